"""DuckDB: tables and checkpoint in one embedded database file.

Rows reach DuckDB in bulk: each commit writes the reduced lines of a binding to a staging NDJSON
file, and one ``INSERT … SELECT json_transform(…) FROM read_json_objects(…)`` per binding parses
them in DuckDB's own threads, keeping the raw line as ``flow_document``. Row-by-row inserts from
Python are an order of magnitude slower. The documents were already checked against the table
shape in Python, so DuckDB's silent conversions never get a say.
"""
