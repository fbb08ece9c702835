"""Destinations: DuckDB (embedded) and PostgreSQL, behind one interface (:mod:`.base`), chosen
from config in one place (:mod:`.factory`)."""
