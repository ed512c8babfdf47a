#!/usr/bin/env bash
# Installs the real servers the tests start (each bound to 127.0.0.1 by its script in scripts/):
#   - noida-db (PyPI): a Kafka-protocol broker (scripts/kafka-broker.sh)
#   - osmem-server (PyPI): an OpenSearch-API server (scripts/opensearch.sh)
#   - moto[server] (PyPI): an AWS implementation, used for Kinesis (scripts/moto.sh)
#   - kinesalite (npm, into target/npm): a Kinesis implementation (scripts/kinesalite.sh)
#   - PostgreSQL 15 and psql (Debian's postgresql): the alerts job's rules and device settings (scripts/postgres.sh)
#   - curl (Debian), which scripts/import-dashboards.sh uses; libssl-dev and pkg-config (Debian), which the
#     rdkafka crate's TLS (for Amazon MSK's SASL_SSL) builds against
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
{ command -v psql >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; } || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
python3 -m pip install --quiet --disable-pip-version-check noida-db osmem-server 'moto[server]' duckdb==1.5.5 duckdb-extension-httpfs==1.5.5
python3 -c 'import noida_db, moto.server, boto3, duckdb, duckdb_extension_httpfs' # fail here, clearly, if a package did not install
python3 -c 'import osmem_server, os; assert os.access(osmem_server.resolve_binary(), os.X_OK)'
npm install --prefix target/npm --no-audit --no-fund --silent kinesalite@3.3.3
test -d target/npm/node_modules/kinesalite
ls /usr/lib/postgresql/*/bin/postgres >/dev/null && command -v psql >/dev/null
