-- A customer is one client's: all the records resolved to a customer_id carry one client_id.
select customer_id, list(distinct client_id order by client_id) as client_ids
from {{ ref('int_customer_clusters') }}
group by customer_id
having count(distinct client_id) > 1
