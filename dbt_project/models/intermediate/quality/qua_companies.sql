-- Quarantine of stg_crm__companies: rows that broke a validation rule (failed_rule says which).
{{ quarantined('stg_crm__companies', 'crm', 'companies') }}
