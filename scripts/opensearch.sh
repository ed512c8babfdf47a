#!/usr/bin/env bash
# Runs a real, out-of-process OpenSearch-API server on 127.0.0.1:PORT in the foreground, until killed:
# osmem-server from PyPI (`pip install osmem-server`), an in-memory OpenSearch-compatible server (it answers
# as OpenSearch 3.x: _bulk, index templates, mappings, _count, search and aggregations). It also exits when
# the process that started this script exits. Real Elasticsearch cannot be installed on these machines.
# Usage: scripts/opensearch.sh PORT
set -euo pipefail
port=${1:?usage: opensearch.sh PORT}
bin=$(python3 -c 'import osmem_server; print(osmem_server.resolve_binary())') || {
  echo "osmem-server is not installed: pip install osmem-server" >&2
  exit 1
}
exec "$bin" -addr "127.0.0.1:$port" -no-stdin-watch -parent-pid "$PPID"
