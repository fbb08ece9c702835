"""The dbt Cloud side: the API client and a local emulator of it."""
