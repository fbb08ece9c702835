"""The NDJSON driver: files matching globs (or stdin) read into transactions for the core."""
