-- Quarantine of stg_analytics__events: rows that broke a validation rule (failed_rule says which).
{{ quarantined('stg_analytics__events', 'analytics', 'events') }}
