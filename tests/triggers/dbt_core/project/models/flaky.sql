-- Fails while TEST_FLAKY is "fail" in dbt's environment; otherwise counts the orders.
{% if env_var('TEST_FLAKY', '') == 'fail' %}
select no_such_column from {{ source('shop', 'orders') }}
{% else %}
select count(*) as orders from {{ source('shop', 'orders') }}
{% endif %}
