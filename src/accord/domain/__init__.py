"""Pure server logic: who is connected, who may hear whom, where an event goes. No I/O."""
