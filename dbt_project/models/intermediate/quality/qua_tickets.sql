-- Quarantine of stg_support__tickets: rows that broke a validation rule (failed_rule says which).
{{ quarantined('stg_support__tickets', 'support', 'tickets') }}
