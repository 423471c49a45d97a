#!/usr/bin/env bash
# Puts Prometheus's `promtool` at .local/tools/bin/promtool (a re-run is a fast no-op), from Debian's
# `prometheus` package: downloaded and unpacked, never installed (no Prometheus server is set up or started).
# Used by `make check-alerts` and tests/telemetry/test_alert_rules.py to check deploy/prometheus/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="$root/.local/tools/bin/promtool"
if [[ -x "$target" ]]; then echo "$target"; exit 0; fi
command -v apt-get >/dev/null || { echo "error: promtool is missing and apt-get is not available; put promtool at $target" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download prometheus >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true  # no package lists yet (a fresh machine)
    apt-get download prometheus >/dev/null 2>&1 || { echo "error: apt-get download prometheus failed" >&2; exit 1; }
fi
dpkg-deb -x prometheus_*.deb unpacked
mkdir -p "$(dirname "$target")"
install -m 0755 unpacked/usr/bin/promtool "$target"
echo "$target"
