"""Clients of the transfer APIs: the shared HTTP exchange, tokens and pages; Jet and
Integration Manager clients and wire models; the JetStream vendor shim."""
