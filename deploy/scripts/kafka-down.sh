#!/usr/bin/env bash
# Stop the Kafka broker that THIS checkout started (by pid file); never anyone else's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PID_FILE="$STATE_DIR/kafka.pid"
if ! pid_alive_with "$PID_FILE" "kafka.Kafka"; then
    rm -f "$PID_FILE"
    info "kafka: not started by this checkout; nothing to stop"
    exit 0
fi
pid=$(<"$PID_FILE")
info "stopping kafka (pid $pid)"
kill -TERM "$pid"
# A controlled shutdown of one node takes a few seconds; after 30 s it is killed.
for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
done
if kill -0 "$pid" 2>/dev/null; then
    warn "kafka (pid $pid) ignored SIGTERM for 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$PID_FILE" "$STATE_DIR/kafka.port"
info "kafka stopped"
