"""asyncio adapters: listeners, stream sessions and the hub that fans events out."""
