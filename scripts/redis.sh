#!/usr/bin/env bash
# Runs a throwaway Redis server (Debian's redis-server) in the foreground on 127.0.0.1:PORT with its files in DIR,
# until killed (exec'd: this script's PID is the server's). Nothing is saved unless PERSIST is "aof": then every
# write goes to an append-only file in DIR (fsync always), so that a server stopped with SIGTERM and started
# again on the same DIR has every acknowledged write.
# Usage: scripts/redis.sh PORT DIR [aof]
set -euo pipefail
port=${1:?usage: redis.sh PORT DIR [aof]}
dir=${2:?usage: redis.sh PORT DIR [aof]}
persist=${3:-}
if ! command -v redis-server >/dev/null 2>&1; then
  echo "Redis is not installed: apt-get install redis-server" >&2
  exit 1
fi
mkdir -p "$dir"
if [ "$persist" = aof ]; then
  exec redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly yes --appendfsync always --daemonize no
fi
exec redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no --daemonize no
