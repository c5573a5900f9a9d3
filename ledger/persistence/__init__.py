"""Adapters to the database: tables, the event store's recorders, the stored form of events
(codec, legacy transcodings) and the migrations. Nothing above this package writes SQL or
reaches into the event store library's internals."""
