"""The source-agnostic core: documents, table shapes, transactions, the typed checkpoint, and
the materializer that commits them. Imports destinations' interface only, never a driver."""
