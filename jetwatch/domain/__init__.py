"""The pure middle: states and rows, the ledger and target protocols, settle, batch, retry,
backoff and the wake-ups between stages; no sqlite, aiohttp or os.stat here."""
