"""Fuzzing helpers and the optional atheris harnesses (``fuzz_*.py``, not collected by
pytest: run them by hand, see ``README.md`` here)."""
