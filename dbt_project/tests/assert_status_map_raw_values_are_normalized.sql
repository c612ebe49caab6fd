-- Staging looks statuses up by lower(trim(raw)): a seed spelling with capitals or spaces
-- would never match, and its rows would be quarantined by mistake.
select entity, raw_value
from {{ ref('status_map') }}
where raw_value <> lower(trim(raw_value))
