"""Use cases: the application (commands and queries with business meaning), its command
schemas, views and the demo. Reached by faces only through ``ledger.service.Ledger``."""
