"""Policies: pydantic models (one per driver, with its restore options), YAML loading
with line numbers, secrets, and the registry of drivers."""
