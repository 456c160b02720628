"""The Jet API: an async client and the wire models it returns."""
