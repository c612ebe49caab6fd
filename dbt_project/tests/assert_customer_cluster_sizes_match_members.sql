-- cluster_size is the number of records that carry the customer_id, on every row of it.
select customer_id, cluster_size, count(*) over (partition by customer_id) as members
from {{ ref('int_customer_clusters') }}
qualify cluster_size != members
