"""LAYER 1 — the mission model (TAK Data Sync) as pure logic: a mission's contents, its
append-only changes, roles and who may see it. No I/O: time, randomness and storage are passed
in; :mod:`accord.api.missions` is the HTTP adapter and :mod:`accord.store` keeps the state."""
