import os
import time


def model(dbt, session):
    """Sleeps TEST_SLOW_SECONDS, then returns one row: a model that is still running."""
    dbt.config(materialized="table")
    time.sleep(float(os.environ.get("TEST_SLOW_SECONDS", "0")))
    return session.sql("select 1 as done")
