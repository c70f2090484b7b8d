#!/bin/sh
# Example performance gate: print a JSON verdict; a non-zero exit or "passed": false fails it.
set -eu
start=$(date +%s%N)
find "${BACKUPCTL_STAGING:?}" -type f -exec cat {} + > /dev/null
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
limit_ms=${MODEL_LOAD_LIMIT_MS:-60000}
if [ "$elapsed_ms" -le "$limit_ms" ]; then passed=true; else passed=false; fi
printf '{"passed": %s, "load_ms": %s, "limit_ms": %s}\n' "$passed" "$elapsed_ms" "$limit_ms"
