#!/usr/bin/env bash
# Runs moto's server (PyPI moto[server]), an in-memory AWS implementation, on 127.0.0.1:PORT in the foreground,
# until killed. One process serves every service the tests use: Kinesis and S3 (path-style addressing, any
# static credentials, region us-east-1).
# Usage: scripts/moto.sh PORT
set -euo pipefail
port=${1:?usage: moto.sh PORT}
python3 -c 'import moto.server' 2>/dev/null || {
  echo "moto is not installed: pip install 'moto[server]'" >&2
  exit 1
}
exec python3 -m moto.server -H 127.0.0.1 -p "$port"
