#!/usr/bin/env bash
# Runs a real, out-of-process Kafka-protocol broker on 127.0.0.1 in the foreground, until killed:
# noida-db from PyPI (`pip install noida-db`), Kafka service only. Data persists in DATA_DIR across restarts.
# Usage: scripts/kafka-broker.sh PORT DATA_DIR
set -euo pipefail
port=${1:?usage: kafka-broker.sh PORT DATA_DIR}
data=${2:?usage: kafka-broker.sh PORT DATA_DIR}
bin=$(python3 -c 'import noida_db, os; print(os.path.join(os.path.dirname(noida_db.__file__), "noida-db"))') || {
  echo "noida-db is not installed: pip install noida-db" >&2
  exit 1
}
mkdir -p "$data"
exec "$bin" start --data-dir "$data" --host 127.0.0.1 --only kafka --kafka-port "$port"
