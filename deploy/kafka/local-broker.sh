#!/usr/bin/env bash
# A single-node Kafka-protocol broker on 127.0.0.1 for trying the `kind: kafka` source and
# for its tests: tansu (crates.io `tansu`, Apache-2.0, a Kafka-API-compatible broker),
# in-memory storage, topic creation by the standard admin API.
#
#   deploy/kafka/local-broker.sh start   # install when missing, start, return once it answers
#   deploy/kafka/local-broker.sh stop
#   deploy/kafka/local-broker.sh status
#
# KAFKA_PORT (default 9092) is the port; AUDITWATCH_TOOLS (default ~/.cache/auditwatch/tools)
# holds the installed broker, reused when there; KAFKA_RUN_DIR (default
# ${TMPDIR:-/tmp}/auditwatch-kafka-$KAFKA_PORT) its pid file and log. KAFKA_ADVERTISED_PORT
# (default KAFKA_PORT) is the port the broker tells clients to use: a TLS front's, when
# one stands before it.
# The first install builds tansu from source with cargo (about 15 minutes on 2 cores).
set -euo pipefail
port=${KAFKA_PORT:-9092}
advertised=${KAFKA_ADVERTISED_PORT:-$port}
tools=${AUDITWATCH_TOOLS:-${HOME:-/tmp}/.cache/auditwatch/tools}
root=$tools/tansu
bin=$root/bin/tansu
run=${KAFKA_RUN_DIR:-${TMPDIR:-/tmp}/auditwatch-kafka-$port}
pidfile=$run/tansu.pid
log=$run/tansu.log
# The version this project was tested with: the broker install is pinned like Cargo.lock
# pins the build.
version=0.6.0

install() {
  [ -x "$bin" ] && return 0
  command -v cargo >/dev/null || { echo "local-broker: cargo is needed to install tansu" >&2; exit 1; }
  echo "local-broker: installing tansu $version into $root (first time only)" >&2
  mkdir -p "$root"
  # Its own temporary build directory (removed after), not the caller's CARGO_TARGET_DIR.
  env -u CARGO_TARGET_DIR cargo install --locked --quiet tansu --version "$version" --features dynostore --root "$root" >&2
}

answers() {
  # A Kafka broker accepts TCP on its port; tansu binds only once it is ready to serve.
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() {
  install
  mkdir -p "$run"
  if running; then
    echo "local-broker: already running on 127.0.0.1:$port (pid $(cat "$pidfile"))" >&2
    return 0
  fi
  if answers; then
    echo "local-broker: something else already listens on 127.0.0.1:$port (set KAFKA_PORT)" >&2
    exit 1
  fi
  # Plain TCP only: tansu 0.6's --cert and --key exclude each other (one clap group), so
  # its own TLS cannot be switched on; the TLS test puts a TLS front before it.
  local scheme=tcp
  # setsid: the broker outlives the shell that started it (CI steps, tests).
  setsid "$bin" broker \
    --listener-url "$scheme://127.0.0.1:$port" \
    --advertised-listener-url "$scheme://127.0.0.1:$advertised" \
    --storage-engine memory://tansu/ >"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 300); do
    if answers; then
      echo "local-broker: tansu listening on 127.0.0.1:$port (pid $(cat "$pidfile"), log $log)" >&2
      return 0
    fi
    if ! running; then
      echo "local-broker: tansu exited at start; its log:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "local-broker: tansu did not answer on 127.0.0.1:$port within 30 s; log: $log" >&2
  exit 1
}

stop() {
  if running; then
    local pid
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running && echo "running on 127.0.0.1:$port (pid $(cat "$pidfile"))" || { echo "not running"; exit 1; } ;;
  install) install ;;
  *) echo "usage: $0 start|stop|status|install" >&2; exit 2 ;;
esac
