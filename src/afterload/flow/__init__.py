"""afterload as an Estuary Flow materialization connector: the protocol driver.

Flow's runtime runs one connector process per shard and talks to it over stdin/stdout. This
package holds what speaks that protocol — message models, the JSON-lines codec, the tuple
decoder, the pure state machine that orders a session, Validate's constraints and the Spec —
and nothing that touches a database: the destinations and the core come in through
interfaces the shell is given.
"""
