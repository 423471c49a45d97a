#!/usr/bin/env bash
# Make PostgreSQL answer on 127.0.0.1:5432 with role+database `ticketflow` and pg_trgm, without Docker.
# Uses a server already listening there; otherwise installs (Debian packages) and starts a local cluster.
# The server settings of deploy/postgres/settings.conf go onto a cluster this checkout started (or set
# up), with a restart when a restart-only one changed (pg-settings.sh); a server it did not start is
# left as it is. Safe to re-run: every step checks before it acts.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/pg-settings.sh"

STARTED_FILE="$STATE_DIR/pg-cluster"   # "<version> <name>" if this checkout started that cluster
mkdir -p "$STATE_DIR"

ticketflow_login_works() {
    command -v psql >/dev/null &&
        PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=3 psql -X -q -w -h "$PG_HOST" -p "$PG_PORT" -U "$PG_ROLE" \
            -d "$PG_DATABASE" -tAc "SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user
                AND EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_trgm')" 2>/dev/null | grep -qx t
}

# A local Debian cluster configured for our port, if any: "<version> <name> <status>".
local_cluster() {
    command -v pg_lsclusters >/dev/null || return 0
    pg_lsclusters --no-header 2>/dev/null | awk -v port="$PG_PORT" '$3 == port {print $1, $2, $4}' | sort -rn | head -n1
}

# From /: the postgres user may not be allowed into this checkout's directory.
superuser_psql() { (cd / && PGOPTIONS="-c client_min_messages=warning" runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@"); }

# The cluster this checkout started ("<version> <name>" in STARTED_FILE), restarted; false for any other.
restart_cluster() {
    local version name
    [[ -f "$STARTED_FILE" ]] || return 1
    read -r version name <"$STARTED_FILE"
    pg_ctlcluster --skip-systemctl-redirect "$version" "$name" restart ||
        die "pg_ctlcluster $version $name restart failed" "read /var/log/postgresql/postgresql-$version-$name.log"
}

# 1. Fast path: everything is already there (login, CREATEDB, pg_trgm); the settings are applied only
#    if this checkout started that cluster.
if ticketflow_login_works; then
    if [[ -f "$STARTED_FILE" ]]; then
        apply_pg_settings "$REPO_ROOT/deploy/postgres/settings.conf"
    fi
    info "postgresql on $PG_HOST:$PG_PORT already serves database $PG_DATABASE (role $PG_ROLE with CREATEDB, pg_trgm)"
    exit 0
fi

if port_in_use "$PG_PORT"; then
    cluster=$(local_cluster)
    if [[ -z "$cluster" || "${cluster##* }" != online* ]]; then
        die "port $PG_PORT answers ($(who_listens "$PG_PORT")) but it is not a local Debian cluster this script can set up, and role $PG_ROLE cannot log in to database $PG_DATABASE with pg_trgm" \
            "create them there yourself (role $PG_ROLE/$PG_PASSWORD LOGIN CREATEDB, database $PG_DATABASE, CREATE EXTENSION pg_trgm), or stop that server so make infra-up can start its own"
    fi
else
    # 2. Install the server when the machine has none.
    if ! command -v pg_lsclusters >/dev/null || [[ -z "$(local_cluster)" && -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]]; then
        [[ $EUID -eq 0 ]] || die "PostgreSQL is not installed and installing it needs root" \
            "sudo apt-get update && sudo apt-get install -y postgresql postgresql-contrib"
        info "installing PostgreSQL from Debian packages"
        installed_now=1
        export DEBIAN_FRONTEND=noninteractive
        { apt-get update -qq && apt-get install -y -qq postgresql postgresql-contrib >/dev/null; } ||
            die "apt-get could not install postgresql" \
                "run 'apt-get update && apt-get install -y postgresql postgresql-contrib' by hand and read its error"
    fi
    # 3. A cluster on our port: the one Debian made, or a new one.
    cluster=$(local_cluster)
    if [[ -z "$cluster" ]]; then
        version=$(ls /usr/lib/postgresql | sort -n | tail -n1)
        name=main
        [[ -d "/etc/postgresql/$version/main" ]] && name=ticketflow  # `main` exists, on another port
        info "creating PostgreSQL $version cluster '$name' on port $PG_PORT"
        pg_createcluster "$version" "$name" --port "$PG_PORT" >/dev/null ||
            die "pg_createcluster $version $name failed" "inspect with pg_lsclusters; remove a broken cluster with pg_dropcluster"
        cluster=$(local_cluster)
    fi
    read -r version name status <<<"$cluster"
    if [[ "$status" == online* && -n "${installed_now:-}" ]]; then
        echo "$version $name" >"$STARTED_FILE"  # apt's post-install started it: ours to stop all the same
    elif [[ "$status" != online* ]]; then
        info "starting PostgreSQL cluster $version/$name"
        # --skip-systemctl-redirect: work the same with or without systemd (containers, CI).
        pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start ||
            die "pg_ctlcluster $version $name start failed" "read /var/log/postgresql/postgresql-$version-$name.log"
        echo "$version $name" >"$STARTED_FILE"
    fi
fi

# 4. Role, database and extension, as the postgres superuser over the local socket.
read -r version name _ <<<"$(local_cluster)"
for _ in $(seq 1 30); do
    superuser_psql -d postgres -tAc "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.5
done
superuser_psql -d postgres >/dev/null <<SQL || die "could not create role/database $PG_ROLE" "read the psql error above"
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
    CREATE ROLE $PG_ROLE;
  END IF;
  -- Also when the role existed already: tests create throwaway databases (CREATEDB).
  ALTER ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
END
\$\$;
SELECT 'CREATE DATABASE $PG_DATABASE OWNER $PG_ROLE'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DATABASE') \gexec
SQL
superuser_psql -d "$PG_DATABASE" -c "CREATE EXTENSION IF NOT EXISTS pg_trgm" >/dev/null ||
    die "CREATE EXTENSION pg_trgm failed" "apt-get install -y postgresql-contrib"

# 5. Server settings for the event store's write load (deploy/postgres/settings.conf) on a local cluster
#    this script set up (it got here, so it did): ALTER SYSTEM and a reload, and a restart for a
#    restart-only setting if this checkout started the cluster (otherwise a warning says so).
apply_pg_settings "$REPO_ROOT/deploy/postgres/settings.conf"

ticketflow_login_works || die "role $PG_ROLE still cannot log in on $PG_HOST:$PG_PORT with a password" \
    "check pg_hba.conf of cluster $version/$name allows 'host all all 127.0.0.1/32 scram-sha-256'"
info "postgresql $version/$name ready on $PG_HOST:$PG_PORT: database $PG_DATABASE, role $PG_ROLE, pg_trgm"
