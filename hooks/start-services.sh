#!/bin/sh
# Example start hook: start the database, wait for it, then the applications.
set -eu
echo "starting services for policy ${BACKUPCTL_POLICY:-?} after restore of ${BACKUPCTL_BACKUP_ID:-?}"
for unit in mariadb.service shop-api.service shop-worker.service; do
    if systemctl list-unit-files "$unit" >/dev/null 2>&1; then
        systemctl start "$unit"
    fi
done
