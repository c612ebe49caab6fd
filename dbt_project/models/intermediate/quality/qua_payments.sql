-- Quarantine of stg_billing__payments: rows that broke a validation rule (failed_rule says which).
{{ quarantined('stg_billing__payments', 'billing', 'payments') }}
