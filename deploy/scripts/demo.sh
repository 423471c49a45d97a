#!/usr/bin/env bash
# Post the demo conversation to the running services (make run calls this after services-up.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
set -a; source deploy/demo.env; set +a
exec .venv/bin/python deploy/demo.py
