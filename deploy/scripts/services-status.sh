#!/usr/bin/env bash
# One line per service: pid, port, readiness.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/services.sh"
for svc in "${SERVICES[@]}"; do
    pid=$(svc_pid "$svc") || pid="-"
    ready=$(svc_ready "$svc") || ready="not answering"
    printf '%-14s pid %-8s http://127.0.0.1:%-5s %s\n' "$svc" "$pid" "${PORTS[$svc]}" "$ready"
done
