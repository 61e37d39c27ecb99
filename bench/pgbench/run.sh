#!/usr/bin/env bash
# What numbering $all costs the appends, measured in SQL alone with pgbench (no Go, no driver):
# writers run the store's append statements while one pgbench client runs a sequencer pass 100
# times a second (as SequencerDelay's default 10 ms allows), once with the store's pass and once
# with the prototype of one $all row per pass (sequence_runs.sql); and the raw baseline, plain
# inserts into one table with no sequencer. Prints events a second and bytes of WAL per event.
# Needs psql, pgbench (from $PGBIN, else PATH) and Go. Each run starts from an empty schema "p"
# in the database DSN names: it DROPS that schema first, so that runs are comparable (a store
# that already holds events writes more WAL per event), and leaves it behind (about 2 GB).
#
#   bench/pgbench/run.sh 'postgres://postgres@localhost:5432/scratch?sslmode=disable'
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 DSN   (a scratch database: its schema \"p\" is dropped and re-created)" >&2
  exit 2
fi
dsn=$1
dir=$(cd "$(dirname "$0")" && pwd)
pgbench=pgbench
[ -z "${PGBIN:-}" ] || pgbench=$PGBIN/pgbench
command -v "$pgbench" >/dev/null || pgbench=/usr/lib/postgresql/15/bin/pgbench
for tool in psql "$pgbench" go awk; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (for pgbench, set PGBIN to PostgreSQL's bin directory)" >&2; exit 2; }
done
q() { psql -qtAX "$dsn" -c "$1"; }

q "DROP SCHEMA IF EXISTS p CASCADE" >/dev/null
(cd "$dir/../.." && go run ./cmd/es-migrate --database-url "$dsn" --schema p init)
psql -qX "$dsn" -f "$dir/sequence_runs.sql"
q "INSERT INTO p.streams (stream_name) SELECT 's-' || g FROM generate_series(0, 100) g ON CONFLICT DO NOTHING" >/dev/null
psql -qX "$dsn" <<'SQL'
CREATE TABLE IF NOT EXISTS p.raw_events (
    event_id uuid PRIMARY KEY, stream_name text NOT NULL, stream_version bigint NOT NULL,
    event_type text NOT NULL, data bytea NOT NULL, metadata bytea, created_at timestamptz NOT NULL,
    UNIQUE (stream_name, stream_version));
CREATE SEQUENCE IF NOT EXISTS p.raw_versions;
SQL

# measure SCRIPT CLIENTS EVENTS_PER_CALL [PASS]: PASS runs beside the writers, 100 times a second.
measure() {
  local lsn0 lsn1 out n tps seq=
  # every run starts after a checkpoint, so each pays the same full-page images (needs the
  # privilege; skipped without it)
  q "CHECKPOINT" >/dev/null 2>&1 || true
  lsn0=$(q "SELECT pg_current_wal_lsn()")
  if [ -n "${4:-}" ]; then
    "$pgbench" -n -M prepared -c 1 -R 100 -T 8 -f "$dir/$4" "$dsn" >/dev/null 2>&1 &
    seq=$!
  fi
  if ! out=$("$pgbench" -n -M prepared -c "$2" -j "$(( $2 < 2 ? 1 : 2 ))" -T 8 -f "$dir/$1" "$dsn" 2>&1); then
    echo "run.sh: pgbench failed:" >&2; echo "$out" >&2; exit 1
  fi
  [ -z "$seq" ] || wait "$seq"
  lsn1=$(q "SELECT pg_current_wal_lsn()")
  n=$(echo "$out" | awk '/actually processed/ {print $NF}')
  tps=$(echo "$out" | awk '/^tps/ {print $3}')
  # number what is left, outside the timing, so that each run starts with an empty queue
  q "SELECT * FROM p.sequence_all(1000000, 'x')" >/dev/null
  q "SELECT p.sequence_runs(1000000)" >/dev/null
  printf '%-14s %3s clients  %-14s %10.0f events/s  %5s bytes of WAL/event\n' "$1" "$2" "${4:-}" \
    "$(awk -v t="$tps" -v k="$3" 'BEGIN { print t * k }')" "$(q "SELECT (pg_wal_lsn_diff('$lsn1', '$lsn0') / ($n * $3))::int")"
}

for round in 1 2 3; do
  echo "round $round"
  measure raw1.sql 10 1
  for pass in pass_all.sql pass_runs.sql; do measure append1.sql 10 1 "$pass"; done
  measure raw100.sql 1 100
  for pass in pass_all.sql pass_runs.sql; do measure append100.sql 1 100 "$pass"; done
done
