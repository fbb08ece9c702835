"""The dbt Cloud job trigger: its config block, an API v2 client, and the fire's modes."""
