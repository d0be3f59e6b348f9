#!/usr/bin/env bash
# Serves the Kafka protocol on loopback with tansu (an Apache Kafka-compatible broker written in
# Rust, installed from crates.io), for the Kafka adapter's tests.
#
#   tests/kafka/tansu.sh install                 build tansu once into cargo's bin folder
#   tests/kafka/tansu.sh start [PORT] [STORAGE]  start it in the background, wait for the port
#   tests/kafka/tansu.sh stop [PORT]             stop the one started on PORT
#   tests/kafka/tansu.sh clean [PORT]            delete the log kept for PORT (when stopped)
#
# PORT defaults to 9092. STORAGE is where tansu keeps its log, which survives a restart:
#   sqlite (the default)  a SQLite file of the run folder, tansu-PORT.db;
#   postgres              the database tansu_PORT on the PostgreSQL server of $TANSU_POSTGRES
#                         (default postgres://postgres@127.0.0.1:5432), made with the schema
#                         tansu's engine expects the first time (see tansu_pg_schema.py);
#   any tansu storage URL, as given.
# (tansu's in-memory engine, memory://tansu/, is faster but skips the rest of a batch when a
# fetch starts inside it, which loses records for a consumer that resumes from a committed
# offset; its SQL engines read record by record.) The run folder, for pid, log and database
# files, is $TANSU_RUN_DIR, default /tmp/tidings-tansu. `start` installs tansu first if it is
# missing, and keeps it running (see `supervise`).
set -euo pipefail

# libsql gives the SQLite storage (which creates its own schema), postgres the PostgreSQL one,
# dynostore the in-memory one.
FEATURES=dynostore,libsql,postgres
VERSION=0.6.0
RUN_DIR=${TANSU_RUN_DIR:-/tmp/tidings-tansu}
POSTGRES=${TANSU_POSTGRES:-postgres://postgres@127.0.0.1:5432}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN_DIR=${CARGO_HOME:-$HOME/.cargo}/bin
TANSU=$BIN_DIR/tansu

# Whether a tansu of this version and these features is installed (cargo records both).
installed() {
  [[ -x $TANSU ]] || return 1
  local record=${CARGO_HOME:-$HOME/.cargo}/.crates2.json
  [[ -f $record ]] || return 1
  python3 - "$record" "$VERSION" "$FEATURES" <<'EOF'
import json, sys
record, version, features = sys.argv[1], sys.argv[2], set(sys.argv[3].split(","))
installs = json.load(open(record)).get("installs", {})
ok = any(key.startswith(f"tansu {version} ") and features <= set(info.get("features", []))
         for key, info in installs.items())
sys.exit(0 if ok else 1)
EOF
}

install() {
  if installed; then
    echo "tansu $VERSION ($FEATURES) is installed: $TANSU"
    return
  fi
  echo "installing tansu $VERSION with features $FEATURES (about 15 minutes on 2 cores, once)"
  cargo install tansu --version "$VERSION" --locked --features "$FEATURES"
}

# Waits until 127.0.0.1:$1 accepts connections, up to $2 seconds.
wait_port() {
  local port=$1 limit=$2 waited=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if (( waited >= limit * 10 )); then return 1; fi
    sleep 0.1; waited=$((waited + 1))
  done
}

# Runs tansu on $1 with storage $2, logging to $3, and runs it again whenever it exits or its
# storage stops serving. tansu 0.6 ends its storage task for good on the first request it cannot
# answer (a client that went away before its answer came, say), and then fails every request
# while still listening; its log shows `UnableToSend`. The log in SQLite or PostgreSQL survives
# the restart, so nothing written is lost: the clients reconnect, as they would after a crash of
# a real server.
supervise() {
  local port=$1 storage=$2 log=$3 server=$RUN_DIR/tansu-$1.server
  trap 'kill "$(cat "$server" 2>/dev/null)" 2>/dev/null; exit 0' TERM
  while :; do
    local from
    from=$(( $(stat -c %s "$log") + 1 ))
    # Loopback only; the advertised address is what clients are told to connect to.
    "$TANSU" broker \
      --cluster-id tidings \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "$storage" >>"$log" 2>&1 &
    local pid=$!
    echo "$pid" >"$server"
    echo "tansu.sh: tansu runs as process $pid, watched by process $BASHPID"
    while kill -0 "$pid" 2>/dev/null; do
      if grep -q UnableToSend <(tail -c +"$from" "$log"); then
        echo "tansu.sh: tansu's storage stopped serving; starting tansu again" >>"$log"
        kill -9 "$pid" 2>/dev/null
        break
      fi
      sleep 0.5
    done
    wait "$pid" 2>/dev/null || true
    # The port must be free before tansu binds it again.
    while wait_port "$port" 0; do sleep 0.1; done
  done
}

# The folder of DDL files in the source of the tansu-storage crate cargo downloaded to install
# tansu (unpacked, or still packed in cargo's download cache).
ddl_dir() {
  local registry=${CARGO_HOME:-$HOME/.cargo}/registry crate=tansu-storage-$VERSION
  local found
  found=$(ls -d "$registry"/src/*/"$crate"/src/ddl 2>/dev/null | head -n 1)
  if [[ -z $found ]]; then
    local packed
    packed=$(ls "$registry"/cache/*/"$crate.crate" 2>/dev/null | head -n 1)
    if [[ -z $packed ]]; then
      echo "error: no source of $crate in $registry; run $0 install" >&2
      return 1
    fi
    mkdir -p "$RUN_DIR/crate"
    tar -xzf "$packed" -C "$RUN_DIR/crate" "$crate/src/ddl"
    found=$RUN_DIR/crate/$crate/src/ddl
  fi
  echo "$found"
}

# The URL of the database for port $1, made with tansu's schema if it does not exist yet.
postgres_storage() {
  local database=tansu_$1
  if [[ -z $(psql "$POSTGRES/postgres" -tAc "select 1 from pg_database where datname = '$database'") ]]; then
    local ddl
    ddl=$(ddl_dir)
    local schema
    schema=$(python3 "$HERE/tansu_pg_schema.py" "$ddl")
    psql "$POSTGRES/postgres" -q -c "create database $database" >&2
    # A schema that fails halfway leaves no database behind to be used as it is next time.
    if ! psql "$POSTGRES/$database" -q -v ON_ERROR_STOP=1 <<<"$schema" >&2; then
      psql "$POSTGRES/postgres" -q -c "drop database $database" >&2 || true
      return 1
    fi
  fi
  # tansu's client would try TLS, and the local server's certificate names no IP address.
  echo "$POSTGRES/$database?sslmode=disable"
}

start() {
  local port=${1:-9092}
  local storage=${2:-sqlite}
  install >&2
  case $storage in
    sqlite) storage=sqlite://tansu-$port.db ;;
    postgres) storage=$(postgres_storage "$port") ;;
  esac
  mkdir -p "$RUN_DIR"
  if wait_port "$port" 0; then
    echo "error: 127.0.0.1:$port is taken already" >&2
    return 1
  fi
  local log=$RUN_DIR/tansu-$port.log
  : >"$log"
  # tansu finds a SQLite file relative to its working folder. The supervisor holds none of this
  # script's output open, so a caller reading it to the end is not kept waiting.
  cd "$RUN_DIR"
  supervise "$port" "$storage" "$log" </dev/null >>"$log" 2>&1 &
  echo $! >"$RUN_DIR/tansu-$port.pid"
  if ! wait_port "$port" 60; then
    echo "error: tansu did not listen on 127.0.0.1:$port; its log:" >&2
    tail -n 20 "$log" >&2
    stop "$port"
    return 1
  fi
  echo "tansu is serving Kafka on 127.0.0.1:$port ($storage), log $log"
}

# Waits up to 10 s for process $1 to end, then kills it.
end_process() {
  local pid=$1
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

stop() {
  local port=${1:-9092} pidfile=$RUN_DIR/tansu-${1:-9092}.pid
  local server=$RUN_DIR/tansu-${1:-9092}.server
  [[ -f $pidfile ]] || { echo "no tansu started on port $port"; return 0; }
  local supervisor pid
  supervisor=$(cat "$pidfile")
  pid=$(cat "$server" 2>/dev/null || true)
  rm -f "$pidfile"
  # The supervisor stops tansu on its way out; whatever is left after 10 s is killed.
  kill "$supervisor" 2>/dev/null && end_process "$supervisor"
  if [[ -n $pid ]]; then
    kill "$pid" 2>/dev/null && end_process "$pid"
  fi
  rm -f "$server"
  echo "tansu on port $port stopped"
}

clean() {
  local port=${1:-9092}
  local pidfile=$RUN_DIR/tansu-$port.pid
  if [[ -f $pidfile ]]; then
    if kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "error: tansu on port $port is running; stop it first" >&2
      return 1
    fi
    # Left by a run that ended without stopping it: nothing runs under that pid any more.
    rm -f "$pidfile" "$RUN_DIR/tansu-$port.server"
  fi
  rm -f "$RUN_DIR/tansu-$port.db" "$RUN_DIR/tansu-$port.db-"*
  if command -v psql >/dev/null 2>&1; then
    psql "$POSTGRES/postgres" -q -c "drop database if exists tansu_$port" 2>/dev/null || true
  fi
  echo "tansu's log for port $port deleted"
}

case ${1:-} in
  install) install ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  clean) shift; clean "$@" ;;
  *) echo "usage: $0 install | start [PORT] [STORAGE] | stop [PORT] | clean [PORT]" >&2; exit 2 ;;
esac
