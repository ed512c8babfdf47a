#!/usr/bin/env bash
# Installs the real servers the tests start (each bound to 127.0.0.1 by its script in scripts/):
#   - noida-db (PyPI): a Kafka-protocol broker (scripts/kafka-broker.sh)
#   - osmem-server (PyPI): an OpenSearch-API server (scripts/opensearch.sh)
#   - moto[server] (PyPI): an AWS implementation, used for Kinesis (scripts/moto.sh)
#   - kinesalite (npm, into target/npm): a Kinesis implementation (scripts/kinesalite.sh)
#   - curl (Debian), which scripts/import-dashboards.sh uses
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v curl >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl
fi
python3 -m pip install --quiet --disable-pip-version-check noida-db osmem-server 'moto[server]'
python3 -c 'import noida_db, moto.server' # fail here, clearly, if a package did not install
python3 -c 'import osmem_server, os; assert os.access(osmem_server.resolve_binary(), os.X_OK)'
npm install --prefix target/npm --no-audit --no-fund --silent kinesalite@3.3.3
test -d target/npm/node_modules/kinesalite
