#!/usr/bin/env bash
# Installs the real servers the tests start (each bound to 127.0.0.1 by its script in scripts/):
#   - noida-db (PyPI): a Kafka-protocol broker (scripts/kafka-broker.sh)
#   - osmem-server (PyPI): an OpenSearch-API server (scripts/opensearch.sh)
#   - moto[server] (PyPI): an AWS implementation, used for Kinesis (scripts/moto.sh)
#   - kinesalite (npm, into target/npm): a Kinesis implementation (scripts/kinesalite.sh)
#   - PostgreSQL 15 and psql (Debian's postgresql): the alerts job's rules and device settings (scripts/postgres.sh)
#   - Redis 7 (Debian's redis-server): the page-view job's sink (scripts/redis.sh)
#   - test data of the page-view job, fetched rather than committed: the logstalgia sample access log (Debian
#     package logstalgia, GPL-3, into target/test-data/logstalgia/), the CC0 country databases (npm
#     @ip-location-db/geo-whois-asn-country-mmdb, into target/npm) and the Python maxminddb reader the test's
#     re-computation uses
#   - Chromium (Debian's chromium), the headless browser the dashboard's tests drive over the DevTools protocol
#   - curl (Debian), which scripts/import-dashboards.sh uses; libssl-dev and pkg-config (Debian), which the
#     rdkafka crate's TLS (for Amazon MSK's SASL_SSL) builds against
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
{ command -v psql >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; } || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
python3 -m pip install --quiet --disable-pip-version-check noida-db osmem-server 'moto[server]' duckdb==1.5.5 duckdb-extension-httpfs==1.5.5 maxminddb==3.2.0
python3 -c 'import noida_db, moto.server, boto3, duckdb, duckdb_extension_httpfs, maxminddb' # fail here, clearly, if a package did not install
python3 -c 'import osmem_server, os; assert os.access(osmem_server.resolve_binary(), os.X_OK)'
npm install --prefix target/npm --no-audit --no-fund --silent kinesalite@3.3.3 @ip-location-db/geo-whois-asn-country-mmdb
test -d target/npm/node_modules/kinesalite
test -s target/npm/node_modules/@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country-ipv4.mmdb
if [ ! -s target/test-data/logstalgia/example.log ]; then
  rm -rf target/test-data/logstalgia.tmp && mkdir -p target/test-data/logstalgia.tmp
  (cd target/test-data/logstalgia.tmp && { apt-get download logstalgia >/dev/null 2>&1 || { apt-get update -qq && apt-get download logstalgia >/dev/null; }; } && dpkg-deb -x logstalgia_*.deb x)
  mkdir -p target/test-data/logstalgia
  cp target/test-data/logstalgia.tmp/x/usr/share/logstalgia/example.log target/test-data/logstalgia/example.log
  cp target/test-data/logstalgia.tmp/x/usr/share/doc/logstalgia/copyright target/test-data/logstalgia/copyright 2>/dev/null || true
  rm -rf target/test-data/logstalgia.tmp
fi
test -s target/test-data/logstalgia/example.log
command -v redis-server >/dev/null
command -v chromium >/dev/null
ls /usr/lib/postgresql/*/bin/postgres >/dev/null && command -v psql >/dev/null
