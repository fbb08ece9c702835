-- Fails on purpose: the column does not exist.
select no_such_column from {{ source('shop', 'orders') }}
