# Shared by services-*.sh: which services run, on which ports. Source it; do not run it.
# shellcheck shell=bash
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$REPO_ROOT/.local/run"
PY="$REPO_ROOT/.venv/bin/python"
# The projector starts first: it relays the event store's log to Kafka and keeps the read models; queries serves them,
# and the dashboard shows them to people (and sends agents' commands).
SERVICES=(projector queries intake preflight routing sla notifications dashboard)
declare -A PORTS=([intake]=8001 [preflight]=8002 [routing]=8003 [sla]=8004 [notifications]=8005 [projector]=8006 [queries]=8007 [dashboard]=8008)

svc_pid() { local f="$RUN_DIR/$1.pid"; [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }
svc_ready() { curl -fsS -m 2 "http://127.0.0.1:${PORTS[$1]}/health/ready" 2>/dev/null; }
