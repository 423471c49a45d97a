#!/usr/bin/env bash
# The Kafka broker's class path from Maven Central, once, into .local/kafka/<version>/libs (deploy/kafka/pom.xml).
# kafka-up.sh runs it before starting the broker; tests that start a private broker run it too.
# Safe to re-run: cached jars (the marker holds the pom's digest) mean no Maven call.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="$(kafka_version)"
[[ -n "$VERSION" ]] || die "cannot read <kafka.version> from $KAFKA_POM" "restore deploy/kafka/pom.xml from git"
LIBS_DIR="$KAFKA_HOME/$VERSION/libs"
LIBS_MARKER="$LIBS_DIR/.complete"
mkdir -p "$KAFKA_LOG_DIR"

pom_digest=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
if [[ ! -f "$LIBS_MARKER" || "$(<"$LIBS_MARKER")" != "$pom_digest" ]]; then
    command -v mvn >/dev/null || die "Maven (mvn) is needed once to fetch Kafka $VERSION" "apt-get install -y maven"
    info "fetching Kafka $VERSION and its runtime dependencies from Maven Central (once)"
    staging="$LIBS_DIR.partial"
    rm -rf "$staging"
    fetch() {
        mvn -q -B -Dmaven.repo.local="$LOCAL_DIR/m2" -f "$KAFKA_POM" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$staging" >>"$KAFKA_LOG_DIR/maven.log" 2>&1
    }
    : >"$KAFKA_LOG_DIR/maven.log"
    # One retry: a registry hiccup should not fail a whole CI run.
    if ! fetch && ! { warn "Maven failed; retrying once in 5 s"; sleep 5; fetch; }; then
        tail -n 20 "$KAFKA_LOG_DIR/maven.log" >&2
        die "Maven could not download Kafka $VERSION (full log: $KAFKA_LOG_DIR/maven.log)" \
            "check that Maven Central is reachable (proxy settings in ~/.m2/settings.xml), then re-run make infra-up"
    fi
    rm -rf "$LIBS_DIR"
    mv "$staging" "$LIBS_DIR"
    echo "$pom_digest" >"$LIBS_MARKER"
fi

