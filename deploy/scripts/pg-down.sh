#!/usr/bin/env bash
# Stop the PostgreSQL cluster only if THIS checkout started it (recorded by pg-up.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STARTED_FILE="$STATE_DIR/pg-cluster"
if [[ ! -f "$STARTED_FILE" ]]; then
    info "postgresql: not started by this checkout; leaving it as it is"
    exit 0
fi
read -r version name <"$STARTED_FILE"
info "stopping PostgreSQL cluster $version/$name"
pg_ctlcluster --skip-systemctl-redirect "$version" "$name" stop -m fast ||
    warn "pg_ctlcluster $version $name stop failed (already stopped?)"
rm -f "$STARTED_FILE"
