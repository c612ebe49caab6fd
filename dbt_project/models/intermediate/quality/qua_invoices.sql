-- Quarantine of stg_billing__invoices: rows that broke a validation rule (failed_rule says which).
{{ quarantined('stg_billing__invoices', 'billing', 'invoices') }}
