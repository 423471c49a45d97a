#!/usr/bin/env bash
# `make infra-up`: PostgreSQL and Kafka on 127.0.0.1, and Kafka's command-line tools, no Docker. Re-running is a fast no-op.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
"$here/pg-up.sh"
"$here/kafka-up.sh"
"$here/kafka-tools.sh"
