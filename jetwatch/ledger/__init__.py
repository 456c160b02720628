"""The ledger: the queue and the memory of every file and batch, behind the LedgerStore protocol."""
