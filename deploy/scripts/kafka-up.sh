#!/usr/bin/env bash
# Start a single-node Apache Kafka (KRaft) on 127.0.0.1:9092 from Maven Central jars, without Docker.
# Safe to re-run: a running broker (ours or anyone's on 9092) is reused; cached jars mean no Maven call.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="$(kafka_version)"
[[ -n "$VERSION" ]] || die "cannot read <kafka.version> from $KAFKA_POM" "restore deploy/kafka/pom.xml from git"
LIBS_DIR="$KAFKA_HOME/$VERSION/libs"
PID_FILE="$STATE_DIR/kafka.pid"
CONFIG_FILE="$KAFKA_HOME/server.properties"
START_TIMEOUT_S="${TICKETFLOW_KAFKA_START_TIMEOUT_S:-120}"
mkdir -p "$STATE_DIR" "$KAFKA_DATA_DIR" "$KAFKA_LOG_DIR"

# 1. Already ours and answering? Then there is nothing to do.
if pid_alive_with "$PID_FILE" "kafka.Kafka"; then
    running_port=$(cat "$STATE_DIR/kafka.port" 2>/dev/null || echo 9092)
    [[ "$running_port" == "$KAFKA_PORT" ]] ||
        die "this checkout's broker (pid $(<"$PID_FILE")) runs on port $running_port, not $KAFKA_PORT" \
            "make infra-down first, then make infra-up"
    if facts=$(kafka_probe "$KAFKA_HOST:$KAFKA_PORT"); then
        info "kafka $(<"$STATE_DIR/kafka.version") already running (pid $(<"$PID_FILE")) on $KAFKA_HOST:$KAFKA_PORT: $facts"
        exit 0
    fi
    # Ours but not answering (still starting, or wedged): fall through to the wait below.
    started_pid=$(<"$PID_FILE")
else
    rm -f "$PID_FILE"
    started_pid=""
fi

if [[ -z "$started_pid" ]]; then
    # 2. Someone else's listener on our ports: reuse a Kafka broker, refuse anything else.
    if port_in_use "$KAFKA_PORT"; then
        if facts=$(kafka_probe "$KAFKA_HOST:$KAFKA_PORT"); then
            info "reusing the Kafka broker already on $KAFKA_HOST:$KAFKA_PORT (not started by this checkout; infra-down leaves it alone): $facts"
            exit 0
        fi
        die "port $KAFKA_PORT is taken by something that is not a Kafka broker ($(who_listens "$KAFKA_PORT"))" \
            "stop that process, or point TICKETFLOW_KAFKA_BOOTSTRAP at a broker you run elsewhere"
    fi
    if port_in_use "$KAFKA_CONTROLLER_PORT"; then
        die "port $KAFKA_CONTROLLER_PORT (Kafka controller) is taken ($(who_listens "$KAFKA_CONTROLLER_PORT"))" \
            "stop that process; the KRaft controller of the local broker listens there"
    fi

    # 3. Java 17+ runs the broker (Kafka 4 brokers require 17).
    command -v java >/dev/null || die "java is not installed" "apt-get install -y openjdk-17-jre-headless"
    java_major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
    [[ "${java_major%%.*}" =~ ^[0-9]+$ && "${java_major%%.*}" -ge 17 ]] ||
        die "$(command -v java) is Java '${java_major:-of unknown version}'; Kafka $VERSION needs 17 or newer" \
            "apt-get install -y openjdk-17-jre-headless (and put it first on PATH, or set it with update-alternatives)"

    # 4. The broker's class path, fetched once by Maven into .local/ (kafka-libs.sh; the marker ties it to the pom).
    "$REPO_ROOT/deploy/scripts/kafka-libs.sh"

    # 5. Render the config with this checkout's absolute data path; format storage on first use only.
    sed -e "s#@KAFKA_DATA_DIR@#$KAFKA_DATA_DIR#g" -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" \
        -e "s#@KAFKA_CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" \
        "$REPO_ROOT/deploy/kafka/server.properties.template" >"$CONFIG_FILE"
    java_cmd=(java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true
        "-Dkafka.logs.dir=$KAFKA_LOG_DIR"
        "-Dlog4j2.configurationFile=$REPO_ROOT/deploy/kafka/log4j2.xml"
        -cp "$LIBS_DIR/*")
    if [[ ! -f "$KAFKA_DATA_DIR/meta.properties" ]]; then
        cluster_id=$("$(python_bin)" -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
        info "formatting $KAFKA_DATA_DIR (cluster id $cluster_id)"
        "${java_cmd[@]}" kafka.tools.StorageTool format --config "$CONFIG_FILE" --cluster-id "$cluster_id" \
            >"$KAFKA_LOG_DIR/format.log" 2>&1 ||
            { cat "$KAFKA_LOG_DIR/format.log" >&2; die "formatting the Kafka storage failed" "rm -rf $KAFKA_DATA_DIR and re-run make infra-up"; }
    fi

    # 6. Start detached (own session), so it outlives make and the shell that ran it.
    info "starting Kafka $VERSION on $KAFKA_HOST:$KAFKA_PORT (logs: $KAFKA_LOG_DIR/server.log)"
    setsid nohup "${java_cmd[@]}" kafka.Kafka "$CONFIG_FILE" >"$KAFKA_LOG_DIR/stdout.log" 2>&1 </dev/null &
    started_pid=$!
    echo "$started_pid" >"$PID_FILE"
    echo "$VERSION" >"$STATE_DIR/kafka.version"
    echo "$KAFKA_PORT" >"$STATE_DIR/kafka.port"
fi

# 7. Ready means: the broker answers a metadata request and lists itself.
deadline=$((SECONDS + START_TIMEOUT_S))
until facts=$(kafka_probe "$KAFKA_HOST:$KAFKA_PORT" --timeout 2 2>/dev/null); do
    if ! kill -0 "$started_pid" 2>/dev/null; then
        rm -f "$PID_FILE"
        tail -n 40 "$KAFKA_LOG_DIR/stdout.log" "$KAFKA_LOG_DIR/server.log" >&2 2>/dev/null || true
        die "the Kafka broker exited during start-up (log tail above)" \
            "read $KAFKA_LOG_DIR/server.log; a stale or foreign data dir is reset by: make infra-down && rm -rf $KAFKA_DATA_DIR"
    fi
    if ((SECONDS >= deadline)); then
        tail -n 30 "$KAFKA_LOG_DIR/server.log" >&2 2>/dev/null || true
        die "Kafka did not answer on $KAFKA_HOST:$KAFKA_PORT within ${START_TIMEOUT_S}s (log tail above; pid $started_pid still running)" \
            "make infra-down, then re-run make infra-up; raise TICKETFLOW_KAFKA_START_TIMEOUT_S on a slow machine"
    fi
    sleep 0.5
done
info "kafka $VERSION ready (pid $started_pid): $facts"
