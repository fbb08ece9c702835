import os


def model(dbt, session):
    """Fails while the file TEST_FAIL_FILE names exists; otherwise counts the orders."""
    dbt.config(materialized="table")
    flag = os.environ.get("TEST_FAIL_FILE", "")
    if flag and os.path.exists(flag):
        raise RuntimeError("flaky model told to fail")
    return session.sql("select count(*) as orders from " + str(dbt.source("shop", "orders")))
