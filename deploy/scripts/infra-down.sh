#!/usr/bin/env bash
# `make infra-down`: stop only what this checkout started (Kafka by pid file; PostgreSQL if we started it).
# Data stays: reset Kafka with `rm -rf .local/kafka/data` after this.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
"$here/kafka-down.sh"
"$here/pg-down.sh"
