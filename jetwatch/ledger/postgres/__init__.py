"""The PostgreSQL ledger backend: one database shared by every daemon of a fleet."""
