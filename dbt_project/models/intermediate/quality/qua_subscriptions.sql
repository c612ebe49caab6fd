-- Quarantine of stg_billing__subscriptions: rows that broke a validation rule (failed_rule says which).
{{ quarantined('stg_billing__subscriptions', 'billing', 'subscriptions') }}
