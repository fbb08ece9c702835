"""The dbt Cloud job trigger."""
