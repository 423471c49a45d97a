# Server settings for the event store's load (deploy/postgres/settings.conf), applied to a PostgreSQL
# cluster: ALTER SYSTEM for each, a reload, then a restart if a restart-only setting changed
# (shared_buffers). Source it; do not run it. Used by pg-up.sh, and by its test against a private cluster.
#
# The caller defines two functions first:
#   superuser_psql ARGS...   psql as a superuser of the cluster (pg-up.sh: runuser -u postgres -- psql -p PORT)
#   restart_cluster          restart the cluster and wait until it accepts connections again; return
#                            non-zero if this checkout may not restart it (then a warning says what to run)
# shellcheck shell=bash

# settings_file_values FILE: "name value" lines, a value of NN%RAM resolved to megabytes of this machine.
settings_file_values() {
    local line name value percent total_kb
    while IFS= read -r line; do
        [[ "$line" =~ ^[[:space:]]*([a-z_]+)[[:space:]]*=[[:space:]]*([^#]*[^#[:space:]]) ]] || continue
        name=${BASH_REMATCH[1]}
        value=${BASH_REMATCH[2]}
        if [[ "$value" =~ ^\'?([0-9]+)%RAM\'?$ ]]; then
            percent=${BASH_REMATCH[1]}
            total_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
            value="'$((total_kb * percent / 100 / 1024))MB'"
        fi
        printf '%s %s\n' "$name" "$value"
    done <"$1"
}

# apply_pg_settings FILE: every setting of FILE on the cluster (ALTER SYSTEM and a reload, only when one
# differs from what the cluster's postgresql.auto.conf holds), then a restart when a setting that needs
# one is pending (changed now, or by an earlier run that could not restart). A second run does nothing.
apply_pg_settings() {
    local file=$1 name value pending changed=""
    local statements=()
    declare -A stored=()
    while IFS='|' read -r name value; do
        [[ -n "$name" ]] && stored[$name]=$value
    done < <(superuser_psql -d postgres -tA -c \
        "SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf' AND error IS NULL")
    while read -r name value; do
        statements+=(-c "ALTER SYSTEM SET $name = $value")
        [[ "${stored[$name]:-}" == "$(sed "s/^'\(.*\)'$/\1/" <<<"$value")" ]] || changed+=" $name"
    done < <(settings_file_values "$file")
    if [[ -n "$changed" ]]; then
        info "postgresql settings changed:$changed (deploy/postgres/settings.conf)"
        superuser_psql -d postgres "${statements[@]}" -c "SELECT pg_reload_conf()" >/dev/null ||
            die "could not apply $file" "read the psql error above"
        sleep 0.5  # pg_settings shows a reload's outcome a moment later (the postmaster signals the backends)
    fi
    pending=$(superuser_psql -d postgres -tAc "SELECT string_agg(name, ', ' ORDER BY name) FROM pg_settings WHERE pending_restart")
    [[ -n "$pending" ]] || return 0
    if ! restart_cluster; then
        warn "restart-only settings are pending ($pending) on a cluster this checkout did not start: restart it yourself to apply them"
        return 0
    fi
    info "restarted the cluster for restart-only settings ($pending)"
    for _ in $(seq 1 60); do
        superuser_psql -d postgres -tAc "SELECT 1" >/dev/null 2>&1 && break
        sleep 0.5
    done
    pending=$(superuser_psql -d postgres -tAc "SELECT string_agg(name, ', ') FROM pg_settings WHERE pending_restart")
    [[ -z "$pending" ]] || die "after the restart, still pending: $pending" "read the server log"
}
