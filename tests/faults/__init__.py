"""Fault injection for the exactly-once campaign (issue 7): a faulty HTTP proxy, a ledger verifier, the trials."""
