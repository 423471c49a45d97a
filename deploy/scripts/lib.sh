# Shared by the infra-*.sh scripts: paths, messages, small checks. Source it; do not run it.
# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this file

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# TICKETFLOW_LOCAL_DIR moves all state elsewhere (tests of these scripts use a scratch directory).
LOCAL_DIR="${TICKETFLOW_LOCAL_DIR:-$REPO_ROOT/.local}"
STATE_DIR="$LOCAL_DIR/state"          # what THIS checkout started, so infra-down stops only that
KAFKA_HOME="$LOCAL_DIR/kafka"         # libs per version, data, logs, rendered config
KAFKA_DATA_DIR="$KAFKA_HOME/data"
KAFKA_LOG_DIR="$KAFKA_HOME/logs"
KAFKA_POM="$REPO_ROOT/deploy/kafka/pom.xml"
# The ports can be moved (e.g. to try these scripts beside a running stack); the project defaults are
# the env contract's 9092 and 5432, which the tests and services use unless told otherwise.
KAFKA_HOST=127.0.0.1
KAFKA_PORT="${TICKETFLOW_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${TICKETFLOW_KAFKA_CONTROLLER_PORT:-9093}"
PG_HOST=127.0.0.1
PG_PORT="${TICKETFLOW_PG_PORT:-5432}"
PG_ROLE=ticketflow
PG_PASSWORD=ticketflow
PG_DATABASE=ticketflow

info() { printf '[infra] %s\n' "$*"; }
warn() { printf '[infra] warning: %s\n' "$*" >&2; }
# die MESSAGE [HOW-TO-FIX]: stop with what is wrong and what to do about it.
die() {
    printf '[infra] error: %s\n' "$1" >&2
    [[ $# -gt 1 ]] && printf '[infra]   fix: %s\n' "$2" >&2
    exit 1
}

python_bin() {
    # Standard-library helpers only: any Python 3 does; .venv is not needed yet.
    if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then echo "$REPO_ROOT/.venv/bin/python"
    elif command -v python3 >/dev/null; then command -v python3
    else die "python3 is missing" "apt-get install -y python3"
    fi
}

kafka_version() {
    # The single pin lives in the pom; read it without starting Maven.
    sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM" | head -n1
}

# port_in_use PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
    "$(python_bin)" - "$1" <<'EOF'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
except OSError:
    sys.exit(1)
EOF
}

# who_listens PORT: the process listening there, as far as ss can tell (for error messages).
who_listens() {
    if command -v ss >/dev/null; then
        ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n1
    fi
}

# pid_alive_with PIDFILE PATTERN: true if the pid in PIDFILE runs and its command line contains PATTERN.
pid_alive_with() {
    local pidfile=$1 pattern=$2 pid
    [[ -f "$pidfile" ]] || return 1
    pid=$(<"$pidfile")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern"
}

kafka_probe() {
    "$(python_bin)" "$REPO_ROOT/deploy/scripts/kafka_probe.py" "$@"
}
