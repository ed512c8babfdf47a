#!/usr/bin/env bash
# Runs a throwaway PostgreSQL 15 server (Debian's postgresql package) in the foreground on 127.0.0.1:PORT with
# its data in DIR/data, until killed: trust authentication for user postgres, its socket in DIR, and
# wal_level=logical (logical replication slots for change data capture). The server runs as the postgres user
# (initdb and postgres refuse root); exec'd through setpriv, so this script's PID is the server's and killing
# it stops the server.
# Usage: scripts/postgres.sh DIR PORT
set -euo pipefail
dir=${1:?usage: postgres.sh DIR PORT}
port=${2:?usage: postgres.sh DIR PORT}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ] || [ ! -x "$bin/postgres" ]; then
  echo "PostgreSQL is not installed: apt-get install postgresql" >&2
  exit 1
fi
as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups)
if [ "$(id -u)" != 0 ]; then as_postgres=(); fi
install -d -m 700 "$dir"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
if [ ! -f "$dir/data/PG_VERSION" ]; then
  "${as_postgres[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
  }
fi
exec "${as_postgres[@]}" "$bin/postgres" -D "$dir/data" -c listen_addresses=127.0.0.1 -p "$port" -k "$dir" \
  -c wal_level=logical -c max_replication_slots=8 -c max_wal_senders=8 -c fsync=off
