"""Policies: pydantic models, YAML loading with line numbers, secrets."""
