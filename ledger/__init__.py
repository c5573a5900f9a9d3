"""The loan ledger application: commands, persistence, idempotency, audit, API and CLI."""
