#!/usr/bin/env bash
# Stop the services (and the demo platforms) that services-up.sh started (SIGTERM, then SIGKILL after 15 s).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/services.sh"
for svc in "${SERVICES[@]}" platforms; do
    pid=$(svc_pid "$svc") || { rm -f "$RUN_DIR/$svc.pid"; continue; }
    kill "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    rm -f "$RUN_DIR/$svc.pid"
    echo "[stop] stopped $svc (pid $pid)"
done
