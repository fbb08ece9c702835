"""Triggers: what runs after data is committed. ``schedule`` decides when, ``runner`` runs it,
``thread`` gives the runners a loop of their own, and each kind (``dbt_cloud``, …) decides how.
Nothing here imports the core or a driver."""
