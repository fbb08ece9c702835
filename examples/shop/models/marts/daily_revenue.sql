-- Revenue per order day. Incremental: a build merges only the days whose orders or revenue
-- changed since the last build (new orders, updates, and hard deletes, which leave no row to
-- notice, alike); a day whose orders were all deleted stays with 0 orders.
{{ config(unique_key='order_date') }}

with days as (
    select
        cast(created_at as date) as order_date,
        count(*) as orders,
        round(sum(amount), 2) as revenue,
        max(flow_published_at) as loaded_until
    from {{ ref('stg_orders') }}
    group by 1
)

{% if is_incremental() %}
select
    coalesce(d.order_date, p.order_date) as order_date,
    coalesce(d.orders, 0) as orders,
    coalesce(d.revenue, 0) as revenue,
    coalesce(d.loaded_until, p.loaded_until) as loaded_until
from days d
full outer join {{ this }} p on d.order_date = p.order_date
where p.order_date is null
   or d.order_date is null
   or d.orders <> p.orders
   or d.revenue <> p.revenue
{% else %}
select * from days
{% endif %}
