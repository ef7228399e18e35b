"""HTTP APIs: Marti (with history, data packages and video), admin, enrollment, partner
files. They meet the rest through the domain's ports and views, never the server directly."""
