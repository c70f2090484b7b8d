#!/usr/bin/env bash
# Set everything up, then run `backupctl demo` on a throwaway MariaDB and a local repository.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/backupctl demo "$@"
