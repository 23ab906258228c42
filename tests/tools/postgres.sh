#!/usr/bin/env bash
# Throwaway PostgreSQL for tests.
#   tests/tools/postgres.sh start   # installs Debian postgresql if missing, starts, prints the URL
#   tests/tools/postgres.sh url     # prints the URL of the running instance
#   tests/tools/postgres.sh stop    # stops it and removes its data directory
# Typical use:  export DDCC_TEST_DATABASE_URL=$(tests/tools/postgres.sh start)
# State lives in $DDCC_PG_DIR (default /tmp/ddcc-pg); the server runs as the `postgres`
# OS user because PostgreSQL refuses to run as root. Only loopback TCP and a socket in
# that directory are used, with trust auth: this is a test database, never a real one.
set -euo pipefail

PGDIR="${DDCC_PG_DIR:-/tmp/ddcc-pg}"
DB="${DDCC_PG_DB:-ddcc_test}"

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    if command -v runuser >/dev/null; then runuser -u postgres -- "$@"; else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi
  else
    "$@"
  fi
}

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ]; then BIN="$d"; fi
  done
  [ -n "${BIN:-}" ]
}

install_pg() {
  if ! find_bin; then
    echo "installing postgresql from Debian packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    local SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo -E"; fi
    $SUDO apt-get update >&2 && $SUDO apt-get install -y postgresql >&2
    find_bin || { echo "postgresql install failed" >&2; exit 1; }
  fi
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$PGDIR" postgres
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

url() {
  [ -f "$PGDIR/port" ] || { echo "not running (no $PGDIR/port)" >&2; exit 1; }
  echo "postgres://postgres@127.0.0.1:$(cat "$PGDIR/port")/$DB"
}

start() {
  install_pg
  if [ -f "$PGDIR/port" ] && as_pg "$BIN/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; then
    url; return
  fi
  rm -rf "$PGDIR"
  mkdir -p "$PGDIR"
  # Root cannot run PostgreSQL: the server runs as the `postgres` user; anyone else runs
  # it as themselves.
  if [ "$(id -u)" = 0 ]; then chown postgres "$PGDIR"; fi
  as_pg "$BIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
  local port; port=$(free_port)
  as_pg "$BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
    -o "-p $port -k $PGDIR -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on" start >/dev/null
  echo "$port" > "$PGDIR/port"
  as_pg "$BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB"
  url
}

stop() {
  if find_bin && [ -d "$PGDIR/data" ]; then
    as_pg "$BIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$PGDIR"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) url ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
