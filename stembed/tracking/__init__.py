"""MLflow: the store, redaction, one run per job, model logging, reading runs back."""
