#!/bin/sh
# Example model validation hook: the staged model directory must load and answer.
# BACKUPCTL_STAGING points at the materialised version (set by the model driver).
set -eu
test -d "${BACKUPCTL_STAGING:?}" || { echo "no staged model at $BACKUPCTL_STAGING" >&2; exit 1; }
test -s "$BACKUPCTL_STAGING/VERSION" || { echo "staged model has no VERSION file" >&2; exit 1; }
echo "model $(cat "$BACKUPCTL_STAGING/VERSION") looks complete"
