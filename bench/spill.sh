#!/usr/bin/env bash
# Opt-in, not in CI (it writes ~4 GB and runs for many minutes): the spill case of issue 5.
# Generates a file of ~50 million distinct users, aggregates it under --memory 1GiB and under a
# budget that holds everything, prints peak RSS and wall time from GNU time (/usr/bin/time -v),
# and compares the two results shard by shard with sha256.
#
#   bench/spill.sh                                   # ~52M distinct users in 85M rows (3.9 GB)
#   ROWS=17000000 USERS=32000000 MEM=256MiB bench/spill.sh   # a scaled run (~10M users)
#
# Environment: ROWS, USERS (generator's id space; the generator draws users with replacement, so
# 160M ids over 85M rows give ~52M distinct), MEM (the tight budget), REF_MEM (the roomy one),
# WORKERS, WORK (scratch folder, default $TMPDIR/segflow-spill), SEGFLOW_CLI (default dist/lib/cli.js),
# KEEP=1 keeps the outputs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-${TMPDIR:-/tmp}/segflow-spill}
ROWS=${ROWS:-85000000}
USERS=${USERS:-160000000}
MEM=${MEM:-1GiB}
REF_MEM=${REF_MEM:-16GiB}
WORKERS=${WORKERS:-}
CLI=${SEGFLOW_CLI:-$ROOT/dist/lib/cli.js}

if [ ! -x /usr/bin/time ]; then
  echo "spill.sh: needs GNU time at /usr/bin/time (apt-get install time)" >&2
  exit 2
fi
[ -f "$CLI" ] || (cd "$ROOT" && npm run build >/dev/null)
mkdir -p "$WORK"
INPUT=$WORK/input-$ROWS-$USERS.csv

# about 46 bytes a row: the input, the spill files and two results
need=$((ROWS * 46 * 3 / 1048576))
avail=$(df -Pm "$WORK" | awk 'NR == 2 { print $4 }')
if [ ! -f "$INPUT" ]; then
  if [ "$avail" -lt "$need" ]; then
    echo "spill.sh: needs ~$need MiB free in $WORK, has $avail MiB" >&2
    exit 2
  fi
  echo "generating $ROWS rows over $USERS user ids into $INPUT ..." >&2
  node "$CLI" generate --out "$INPUT" --rows "$ROWS" --users "$USERS"
fi

# run NAME MEMORY: aggregate under /usr/bin/time -v; prints one result line
run() {
  local name=$1 mem=$2 out=$WORK/out-$1
  echo "aggregate --memory $mem ..." >&2
  /usr/bin/time -v node "$CLI" aggregate "$INPUT" --out "$out" --force --memory "$mem" ${WORKERS:+--workers "$WORKERS"} --json \
    >"$WORK/$name.json" 2>"$WORK/$name.time"
  local rss wall
  rss=$(awk -F': ' '/Maximum resident set size/ { print int($2 / 1024) }' "$WORK/$name.time")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { print $2 }' "$WORK/$name.time")
  (cd "$out" && sha256sum users-*.csv rejects.jsonl >"$WORK/$name.sha256")
  node -e '
    const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const [name, mem, rss, wall] = process.argv.slice(2);
    const t = s.timings;
    console.log([name, mem, rss + " MiB", wall, s.users, s.rows.read, (s.spilled.bytes / 1048576).toFixed(0) + " MiB",
      (t.scan / 1000).toFixed(1) + " s", (t.merge / 1000).toFixed(1) + " s", s.workers].join("\t"));
  ' "$WORK/$name.json" "$name" "$mem" "$rss" "$wall"
}

{
  printf 'run\t--memory\tpeak RSS\twall\tusers\trows\tspilled\tscan\tmerge\tworkers\n'
  run tight "$MEM"
  run roomy "$REF_MEM"
} | tee "$WORK/results.tsv" | column -t -s $'\t'

if cmp -s "$WORK/tight.sha256" "$WORK/roomy.sha256"; then
  echo "shards and rejects identical (sha256 of all $(wc -l <"$WORK/tight.sha256") files)"
  status=0
else
  echo "RESULTS DIFFER:" && diff "$WORK/tight.sha256" "$WORK/roomy.sha256" || true
  status=1
fi
[ -n "${KEEP:-}" ] || rm -rf "$WORK/out-tight" "$WORK/out-roomy"
exit $status
