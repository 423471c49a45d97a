#!/usr/bin/env bash
# `make infra-status`: what runs where, who started it, and whether it answers. Never changes anything.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

version="$(kafka_version)"
if pid_alive_with "$STATE_DIR/kafka.pid" "kafka.Kafka"; then
    owner="started by this checkout, pid $(<"$STATE_DIR/kafka.pid"), version $(<"$STATE_DIR/kafka.version")"
else
    owner="not started by this checkout (pinned version $version)"
fi
if facts=$(kafka_probe "$KAFKA_HOST:$KAFKA_PORT" 2>&1); then
    echo "kafka      $KAFKA_HOST:$KAFKA_PORT  reachable    $owner; $facts"
else
    echo "kafka      $KAFKA_HOST:$KAFKA_PORT  unreachable  $owner; $facts"
fi

if command -v pg_lsclusters >/dev/null; then
    cluster=$(pg_lsclusters --no-header 2>/dev/null | awk -v port="$PG_PORT" '$3 == port {print $1 "/" $2 " (" $4 ")"}' | head -n1)
else
    cluster="no Debian cluster tools installed"
fi
if [[ -f "$STATE_DIR/pg-cluster" ]]; then pg_owner="started by this checkout"; else pg_owner="not started by this checkout"; fi
if command -v psql >/dev/null &&
    server=$(PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=3 psql -X -w -h "$PG_HOST" -p "$PG_PORT" -U "$PG_ROLE" \
        -d "$PG_DATABASE" -tAc "SHOW server_version" 2>&1); then
    echo "postgresql $PG_HOST:$PG_PORT  reachable    cluster ${cluster:-?}, $pg_owner; server $server, database $PG_DATABASE as $PG_ROLE"
else
    echo "postgresql $PG_HOST:$PG_PORT  unreachable  cluster ${cluster:-none}, $pg_owner; ${server:-psql not installed}"
fi
