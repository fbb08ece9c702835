-- One row per order, typed: created_at arrives as an ISO string in the documents.
select
    id as order_id,
    customer,
    cast(amount as double) as amount,
    status,
    cast(created_at as timestamptz) as created_at,
    flow_published_at
from {{ source('shop', 'orders') }}
