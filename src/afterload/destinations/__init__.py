"""Where materialized tables live: a small interface and its DuckDB (and later PostgreSQL) forms."""
