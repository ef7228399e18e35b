"""Scale-out on NATS JetStream (issue 17): several Accord nodes as one logical server.

``subjects`` is pure (subject names, interest, the header codec); ``bus`` is the asyncio adapter
between the hub and NATS; ``natsd`` runs a ``nats-server`` binary (tests, single-host installs).
"""
