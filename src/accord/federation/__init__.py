"""Federation with partner servers: TAK Server v2 (gRPC "FIG") links (DESIGN: layer 2)."""
