"""PostgreSQL: tables and checkpoint in one server database, written with ``COPY``.

Each commit is one server transaction holding the rows of every binding, the checkpoint and the
fence check, so a crash or a lost connection leaves either all of it or none. Rows are encoded to
``COPY`` text in Python (one parse per document, values checked by the runtime already) and
streamed while the server ingests them, so the two run on different cores:

* a table that is new or empty, or a delta-updates table, gets its rows by ``COPY`` straight in;
* otherwise rows go by ``COPY`` into a temporary table and one
  ``INSERT … ON CONFLICT (key) DO UPDATE`` merges them (the last document per key wins);
* hard deletes go by ``COPY`` into a temporary table of keys and one ``DELETE … USING``.

Identifiers are always quoted, so property names keep their case, spaces, quotes and reserved
words. PostgreSQL silently cuts names longer than 63 bytes, so a name that does not fit is
renamed by one rule (see :func:`pg_identifier`); the column's comment keeps the property's real
name, which is how :meth:`PostgresDestination.columns` maps it back.

Only one process may hold a materialization: :meth:`PostgresDestination.open` takes a session
advisory lock (a second process is refused) and raises the fence (a process that lost its lock,
e.g. across a lost connection, and whose place was taken, can never commit again). A connection
lost during a commit is re-established and the whole commit redone from the rows still in
memory, a bounded number of times with backoff; a commit whose ``COMMIT`` was sent but not
acknowledged is recognised by its checkpoint and never applied twice.
"""
