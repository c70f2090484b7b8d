#!/bin/sh
# Example apply hook: ask the model server to reload the directory it serves.
set -eu
if systemctl list-unit-files model-server.service >/dev/null 2>&1; then
    systemctl reload-or-restart model-server.service
fi
echo "model server reloaded for policy ${BACKUPCTL_POLICY:-?}"
