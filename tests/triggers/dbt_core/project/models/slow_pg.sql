{{ config(materialized='table', pre_hook="select pg_sleep(" ~ env_var('TEST_SLOW_SECONDS', '0') ~ ")") }}
select 1 as done
