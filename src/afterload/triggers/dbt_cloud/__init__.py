"""The dbt Cloud job trigger: its config block, an API v2 client (its timeouts and retries in
``policy``), and the fire's modes."""
