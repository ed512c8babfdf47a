#!/usr/bin/env bash
# Runs moto's server (PyPI moto[server]), an in-memory AWS implementation used here for Kinesis, on
# 127.0.0.1:PORT in the foreground, until killed.
# Usage: scripts/moto-kinesis.sh PORT
set -euo pipefail
port=${1:?usage: moto-kinesis.sh PORT}
python3 -c 'import moto.server' 2>/dev/null || {
  echo "moto is not installed: pip install 'moto[server]'" >&2
  exit 1
}
exec python3 -m moto.server -H 127.0.0.1 -p "$port"
