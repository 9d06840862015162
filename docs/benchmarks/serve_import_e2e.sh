#!/bin/bash
# A million-line list through `bulwark serve` and `bulwark import`, as an
# operator runs them: the service with its data directory (index journal,
# refresh loop, snapshots), the list uploaded by the CLI, the job followed to
# its end. Prints the command's wall clock and the job's own seconds.
# docs/benchmarks/serve.md, "The index journal's sync is not a single write",
# gives the figures. Benign data only: random hex strings.
#
#   bash docs/benchmarks/serve_import_e2e.sh target/release/bulwark [postgres://…/postgres] [lines]
#
# With a PostgreSQL URL the service runs in a new database beside the one
# named (created and dropped here); without one, on SQLite in a temporary
# data directory.
set -euo pipefail
bin=$(realpath "$1")
server_url=${2:-}
lines=${3:-1000000}
port=$((20000 + RANDOM % 10000))
dir=$(mktemp -d)
stop() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; return 0; }
trap 'stop; rm -rf "$dir"' EXIT
python3 -c "
import random, sys
r = random.Random(5)
with open(sys.argv[1], 'w') as f:
    for _ in range(int(sys.argv[2])):
        f.write('pdq %064x\n' % r.getrandbits(256))
" "$dir/list.txt" "$lines"
database=()
if [ -n "$server_url" ]; then
  db=bulwark_e2e_$$
  psql -q "$server_url" -c "CREATE DATABASE $db"
  trap 'stop; psql -q "$server_url" -c "DROP DATABASE IF EXISTS $db"; rm -rf "$dir"' EXIT
  database=(--database "${server_url%/*}/$db")
fi
cd "$dir"
"$bin" serve --listen "127.0.0.1:$port" "${database[@]}" > serve.log 2>&1 &
pid=$!
for _ in $(seq 1 150); do
  [ -f bulwark-data/admin.key ] && curl -sf "http://127.0.0.1:$port/v1/health" > /dev/null && break
  sleep 0.2
done
key=$(cat bulwark-data/admin.key)
curl -sf -X POST -H "Authorization: Bearer $key" -H 'content-type: application/json' \
  -d '{"name":"e2e"}' "http://127.0.0.1:$port/v1/banks" > /dev/null
# Making the bank was a single write: an import job on PostgreSQL writes
# one batch at a time for a second after one.
sleep 1.2
start=$(date +%s.%N)
"$bin" import list.txt --bank e2e --key "$key" --server "http://127.0.0.1:$port" --json > job.json
end=$(date +%s.%N)
python3 -c "
import json, sys
j = json.load(open('job.json'))
wall = float(sys.argv[1])
print(f\"{j['status']}: {j['added']} added, bulwark import {wall:.2f} s ({j['lines'] / wall:,.0f} lines/s), the job {j['seconds']:.2f} s\")
" "$(echo "$end - $start" | bc)"
