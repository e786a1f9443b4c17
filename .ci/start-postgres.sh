#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on 127.0.0.1 for the storage tests and print
# its SQLAlchemy URL on stdout (everything else goes to stderr). Idempotent: skips
# the install when Debian's postgresql is there, initdb when the cluster exists,
# the start when it is running, CREATE DATABASE when the database exists.
set -euo pipefail
log() { echo "[postgres] $*" >&2; }
PORT="${STORAGE_PG_PORT:-54329}"          # not 5432: leave any system cluster alone
DATA="${STORAGE_PG_DATA:-/var/tmp/storage-ci-pg}"
DB=storage_test
PW=storage-ci                            # loopback-only throw-away server
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo -n"; fi

if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  log "installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq --no-install-recommends postgresql >&2
fi
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"

# postgres refuses to run as root: run it as the postgres user then
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" = 0 ]; then mkdir -p "$DATA"; chown postgres:postgres "$DATA"; chmod 700 "$DATA"; fi

if [ ! -f "$DATA/PG_VERSION" ]; then
  log "initdb $DATA"
  pwfile="$(mktemp)"; echo "$PW" > "$pwfile"; chmod 644 "$pwfile"
  as_pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        --pwfile="$pwfile" -E UTF8 >&2
  rm -f "$pwfile"
fi
if as_pg "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  log "already running"
else
  log "starting on 127.0.0.1:$PORT"
  as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k /tmp -c fsync=${STORAGE_PG_FSYNC:-off}" start >&2
fi
export PGPASSWORD="$PW"
psql_() { "$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -tAq "$@"; }
for _ in $(seq 1 30); do psql_ -d postgres -c "SELECT 1" >/dev/null 2>&1 && break; sleep 1; done
if [ "$(psql_ -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
  psql_ -d postgres -c "CREATE DATABASE $DB" >&2
fi
echo "postgresql+psycopg://postgres:$PW@127.0.0.1:$PORT/$DB"
