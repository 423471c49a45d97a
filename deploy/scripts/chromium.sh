#!/usr/bin/env bash
# Debian's chromium for the dashboard's browser tests (tests/dashboard): Playwright drives it and never
# downloads a browser. Installed from apt when missing (called by make test).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BROWSER="${TICKETFLOW_CHROMIUM:-/usr/bin/chromium}"
[[ -x "$BROWSER" ]] && exit 0
[[ $EUID -eq 0 ]] || die "chromium is not installed and installing it needs root" \
    "sudo apt-get update && sudo apt-get install -y chromium"
info "installing chromium from Debian packages"
export DEBIAN_FRONTEND=noninteractive
{ apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } ||
    die "apt-get could not install chromium" "run 'apt-get update && apt-get install -y chromium' by hand and read its error"
