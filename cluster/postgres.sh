#!/usr/bin/env bash
# A PostgreSQL server of your own on 127.0.0.1, for trying shared storage on one machine,
# for the tests (.ci/run) and for the workers benchmark. Not for production: one role,
# a random password, data in DIR.
#
#   cluster/postgres.sh start DIR [PORT]   # initdb on first use, start; prints the URL
#   cluster/postgres.sh url DIR            # the URL again
#   cluster/postgres.sh stop DIR
#
# Needs Debian's postgresql package (apt-get install postgresql) or any PostgreSQL >= 12
# whose initdb/pg_ctl are on PATH or under /usr/lib/postgresql/*/bin. Run as root, the
# server runs as the `postgres` user (PostgreSQL refuses root).
set -euo pipefail
cmd=${1:?usage: $0 start|url|stop DIR [PORT]}
dir=${2:?usage: $0 start|url|stop DIR [PORT]}
port=${3:-5433}
bin=$(dirname "$(readlink -f "$(command -v pg_ctl 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -1)")")
if [[ ! -x $bin/pg_ctl ]]; then
  echo "error: PostgreSQL is not installed (no pg_ctl); on Debian: apt-get install postgresql" >&2
  exit 1
fi
as_owner() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [[ $(id -u) == 0 ]]; then
  chown postgres "$dir"
  if ! runuser -u postgres -- test -w "$dir"; then
    echo "error: the postgres user cannot enter $dir (a parent folder is private to root);" \
         "choose a folder it can reach, e.g. under /tmp, or chmod a+x the parents." >&2
    exit 1
  fi
fi
case $cmd in
  start)
    if [[ ! -f $dir/data/PG_VERSION ]]; then
      mkdir -p "$dir/data"
      head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$dir/password"
      echo "$port" > "$dir/port"
      [[ $(id -u) == 0 ]] && chown -R postgres "$dir"
      chmod 700 "$dir/data"
      as_owner "$bin/initdb" -D "$dir/data" -U seedsweep --auth=scram-sha-256 \
        --pwfile="$dir/password" -E UTF8 >"$dir/initdb.log"
      cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
fsync = on
CONF
    fi
    port=$(cat "$dir/port")
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
    fi
    PGPASSWORD=$(cat "$dir/password") "$bin/psql" -h 127.0.0.1 -p "$port" -U seedsweep -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='seedsweep'" | grep -q 1 ||
      PGPASSWORD=$(cat "$dir/password") "$bin/createdb" -h 127.0.0.1 -p "$port" -U seedsweep seedsweep
    PGPASSWORD=$(cat "$dir/password") "$bin/psql" -h 127.0.0.1 -p "$port" -U seedsweep -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='mlflow'" | grep -q 1 ||
      PGPASSWORD=$(cat "$dir/password") "$bin/createdb" -h 127.0.0.1 -p "$port" -U seedsweep mlflow
    echo "postgresql://seedsweep:$(cat "$dir/password")@127.0.0.1:$port/seedsweep"
    ;;
  url)
    echo "postgresql://seedsweep:$(cat "$dir/password")@127.0.0.1:$(cat "$dir/port")/seedsweep"
    ;;
  stop)
    if [[ -f $dir/data/PG_VERSION ]]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    fi
    ;;
  *) echo "usage: $0 start|url|stop DIR [PORT]" >&2; exit 2 ;;
esac
