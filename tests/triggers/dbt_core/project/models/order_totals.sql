select status, count(*) as orders, sum(amount) as amount, '{{ var("since", "") }}' as since
from {{ source('shop', 'orders') }}
group by status
