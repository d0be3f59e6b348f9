#!/usr/bin/env bash
# The test command: installs what the tests need and this machine lacks, starts every service
# that is down, then runs every test, the broker suites included.
#
#   tests/run.sh          set up, then run every test
#   tests/run.sh setup    set up only (what CI does before its lints)
#
# What it may install (Debian packages, as root or through sudo): cmake and the libcurl headers,
# as the Kafka client's C library is built from source; Chromium, in which the HTML event
# catalog is loaded; Node.js and npm, for the AsyncAPI parser; the brokers themselves and their
# command-line clients, where they are missing; tansu, a Kafka-compatible server from crates.io
# (built once into cargo's bin folder). What it starts when it is not listening: NATS with
# JetStream on 4222, RabbitMQ on 5672, Redis on 6379, Mosquitto on 1883, PostgreSQL on 5432
# and tansu on 9092 (stopped again when the script ends, if it started it).
#
# A plain `cargo test` needs none of this: the broker tests are ignored there, with the reason.
# Here they run (`--include-ignored`), and one whose broker cannot be reached fails.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# Runs a command as root: directly, or through sudo.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages of which a command or file is missing, updating the package
# lists once.
updated=false
install() {
  if [[ $updated == false ]]; then
    as_root apt-get update -qq
    updated=true
  fi
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
need_command() { # COMMAND PACKAGE...
  local command=$1; shift
  command -v "$command" >/dev/null 2>&1 || install "$@"
}
need_package() { # PACKAGE...
  dpkg -s "$@" >/dev/null 2>&1 || install "$@"
}

# Waits until 127.0.0.1:$1 accepts TCP connections, up to $2 seconds.
wait_port() {
  local port=$1 limit=${2:-60} waited=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if (( waited >= limit )); then return 1; fi
    sleep 1; waited=$((waited + 1))
  done
}

# Starts a service that is not listening on its port, then insists that it is.
ensure_service() { # NAME PORT COMMAND...
  local name=$1 port=$2; shift 2
  if wait_port "$port" 1; then
    echo "$name is up on 127.0.0.1:$port"
    return
  fi
  echo "$name is down on 127.0.0.1:$port; starting it: $*"
  as_root "$@" || true
  if ! wait_port "$port" 90; then
    echo "error: $name did not come up on 127.0.0.1:$port" >&2
    exit 1
  fi
  echo "$name is up on 127.0.0.1:$port"
}

setup() {
  log "tools"
  need_package cmake libcurl4-openssl-dev
  need_command chromium chromium
  need_command npm nodejs npm
  need_command python3 python3 python3-pip python3-venv
  need_command nats-server nats-server
  need_command rabbitmq-server rabbitmq-server
  need_command redis-server redis-server
  need_command mosquitto mosquitto
  need_command mosquitto_pub mosquitto-clients
  need_command pg_ctlcluster postgresql
  need_command kill procps

  log "services"
  as_root mkdir -p /var/lib/nats-server /var/lib/redis /var/log/redis
  ensure_service nats 4222 start-stop-daemon --start --oknodo --background \
    --exec "$(command -v nats-server)" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  ensure_service rabbitmq 5672 rabbitmq-server -detached
  ensure_service redis 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
    --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/tests.log
  ensure_service mosquitto 1883 mosquitto -d -c /etc/mosquitto/mosquitto.conf
  # The Kafka restart test keeps the log of a tansu of its own in PostgreSQL.
  ensure_service postgresql 5432 pg_ctlcluster --skip-systemctl-redirect \
    "$(ls /etc/postgresql | sort -V | tail -n 1)" main start

  log "kafka (tansu)"
  tests/kafka/tansu.sh install
  if wait_port 9092 1; then
    echo "kafka is up on 127.0.0.1:9092"
  else
    tests/kafka/tansu.sh clean 9092
    tests/kafka/tansu.sh start 9092
    started_tansu=true
  fi
}

started_tansu=false
stop_tansu() {
  if [[ $started_tansu == true ]]; then tests/kafka/tansu.sh stop 9092; fi
}
trap stop_tansu EXIT

case "${1:-test}" in
  setup)
    setup
    # Left running for the test run that follows.
    started_tansu=false
    ;;
  test)
    setup
    log "cargo test --workspace --all-features --no-fail-fast --tests -- --include-ignored"
    cargo test --workspace --all-features --no-fail-fast --tests -- --include-ignored
    log "cargo test --workspace --all-features --doc"
    cargo test --workspace --all-features --doc
    ;;
  *)
    echo "usage: tests/run.sh [setup|test]" >&2
    exit 2
    ;;
esac
