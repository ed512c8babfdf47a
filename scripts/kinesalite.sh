#!/usr/bin/env bash
# Runs kinesalite (npm), an in-memory Kinesis implementation, on 127.0.0.1:PORT in the foreground, until
# killed. Streams become ACTIVE 50 ms after a create, split, merge or update (kinesalite's default: 500 ms).
# kinesalite is installed under target/npm (by .ci/run, or here on first use: npm install kinesalite).
# Usage: scripts/kinesalite.sh PORT
set -euo pipefail
port=${1:?usage: kinesalite.sh PORT}
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/target/npm"
if [ ! -d "$dir/node_modules/kinesalite" ]; then
  npm install --prefix "$dir" --no-audit --no-fund --silent kinesalite@3.3.3 >&2
fi
# kinesalite's command line has no --host: listen on 127.0.0.1 only through its module API.
exec node -e "
const kinesalite = require('$dir/node_modules/kinesalite');
kinesalite({createStreamMs: 50, deleteStreamMs: 50, updateStreamMs: 50, shardLimit: 100})
  .listen($port, '127.0.0.1', () => console.log('kinesalite listening on 127.0.0.1:$port'));
"
