#!/usr/bin/env bash
# Set everything up, then run the linters and the whole test suite (real mariadbd, moto's S3 server).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
.venv/bin/ruff check backupctl tests bench
.venv/bin/mypy backupctl
.venv/bin/python -m pytest -q "$@"
