"""Intake: watch folders (events and scans), settle files and record them in the ledger."""
