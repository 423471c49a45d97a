#!/usr/bin/env bash
# Start every service as a background process (logs and pids under .local/run/), wait until each
# answers /health/ready (Kafka and PostgreSQL reachable). Safe to re-run: running services stay.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/services.sh"
mkdir -p "$RUN_DIR"
# The demo tenants' secrets (deploy/demo.env), for variables not already set in the environment.
while IFS='=' read -r name value; do
    [[ $name =~ ^[A-Z_][A-Z0-9_]*$ && -z ${!name:-} ]] && export "$name=$value"
done < "$REPO_ROOT/deploy/demo.env"
[[ -x $PY ]] || { echo "[run] error: .venv is missing: run make setup" >&2; exit 1; }
# The demo's chat platforms (deploy/demo_platforms.py) first: notifications delivers to them.
if pid=$(svc_pid platforms); then
    echo "[run] demo platforms already running (pid $pid)"
elif ss -ltn "sport = :8765" | grep -q LISTEN; then
    echo "[run] port 8765 is taken: the demo platforms are not started (deliveries will be retried)" >&2
else
    (cd "$REPO_ROOT" && exec nohup "$PY" deploy/demo_platforms.py >"$RUN_DIR/platforms.log" 2>&1) &
    echo $! >"$RUN_DIR/platforms.pid"
    for _ in $(seq 1 40); do
        curl -fsS -m 1 http://127.0.0.1:8767/health/ready >/dev/null 2>&1 && break
        svc_pid platforms >/dev/null || break
        sleep 0.25
    done
    if curl -fsS -m 1 http://127.0.0.1:8767/health/ready >/dev/null 2>&1; then
        echo "[run] started the demo platforms (pid $(cat "$RUN_DIR/platforms.pid"), BotX :8765, Bitrix24 :8766, SMTP :8025)"
    else
        echo "[run] error: the demo platforms did not start; last lines of .local/run/platforms.log:" >&2
        tail -n 5 "$RUN_DIR/platforms.log" >&2 || true
        exit 1
    fi
fi
for svc in "${SERVICES[@]}"; do
    if pid=$(svc_pid "$svc"); then echo "[run] $svc already running (pid $pid)"; continue; fi
    if ss -ltn "sport = :${PORTS[$svc]}" | grep -q LISTEN; then
        echo "[run] error: port ${PORTS[$svc]} for $svc is taken by another process" >&2
        echo "[run]   fix: stop it (ss -ltnp 'sport = :${PORTS[$svc]}') or set TICKETFLOW_${svc^^}_PORT" >&2
        exit 1
    fi
    # exec: the recorded pid is the service's own process (make stop signals it directly).
    (cd "$REPO_ROOT" && exec nohup "$PY" -m "ticketflow.$svc" >"$RUN_DIR/$svc.log" 2>&1) &
    echo $! >"$RUN_DIR/$svc.pid"
    echo "[run] started $svc (pid $(cat "$RUN_DIR/$svc.pid"), port ${PORTS[$svc]}, log .local/run/$svc.log)"
done
failed=0
for svc in "${SERVICES[@]}"; do
    for _ in $(seq 1 120); do
        svc_ready "$svc" >/dev/null && break
        if ! svc_pid "$svc" >/dev/null; then break; fi
        sleep 0.5
    done
    if body=$(svc_ready "$svc"); then
        echo "[run] $svc ready: $body"
    else
        echo "[run] error: $svc is not ready; last lines of .local/run/$svc.log:" >&2
        tail -n 20 "$RUN_DIR/$svc.log" >&2 || true
        failed=1
    fi
done
exit $failed
