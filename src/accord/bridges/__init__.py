"""Bridges: translators from non-TAK telemetry to events, with no I/O (layer 1).

A bridge takes bytes (and ``now``) and returns events, like the wire protocol does; the thin
asyncio adapters in :mod:`accord.feeds` move the bytes. :mod:`accord.bridges.mavlink` reads
MAVLink (ArduPilot, PX4, ...) and keeps one :class:`~accord.bridges.uas.Vehicle` state per
system id; :mod:`accord.bridges.uas` turns a vehicle's state into the events ATAK's UAS Tool
users know: the aircraft, its camera ``<sensor>``, the aim point (SPI) and video.
"""
