"""Schedule: what the Airflow DAGs need and nothing else imports. Their settings (`config`, one
pydantic-settings model) and the half-open windows of their runs (`windows`)."""
