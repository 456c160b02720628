"""One module per benchmark scenario; the ``_``-prefixed modules hold what they share."""
