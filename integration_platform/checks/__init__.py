"""Python asset checks: data-quality judgements that dbt tests cannot express."""
