-- Every conversion goes through USD: its rate must be exactly 1 on every day it is listed.
select date, rate_to_usd
from {{ ref('fx_rates') }}
where currency = 'USD' and rate_to_usd <> 1
