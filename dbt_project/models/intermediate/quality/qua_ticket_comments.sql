-- Quarantine of stg_support__ticket_comments: rows that broke a validation rule (failed_rule says which).
{{ quarantined('stg_support__ticket_comments', 'support', 'tickets') }}
