#!/usr/bin/env bash
# Set everything up, then run the linters and the whole test suite (real mariadbd, moto's S3 server).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
.venv/bin/ruff check backupctl tests bench
.venv/bin/ruff format --check --quiet backupctl tests bench
.venv/bin/mypy backupctl bench
.venv/bin/lint-imports --no-cache  # the layers of docs/architecture.md
site=$(mktemp -d)
.venv/bin/mkdocs build --strict --quiet --site-dir "$site"  # the manual in docs/
rm -rf "$site"
.venv/bin/python -m pytest -q -n 2 "$@"  # two workers (pytest-xdist): about 12.5 min instead of 18 on 2 cores
