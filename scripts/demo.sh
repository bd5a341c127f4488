#!/usr/bin/env bash
# make demo: a sandbox master and standby on loopback, the agent as the
# master's semi-sync replica, transactions, a kill -9, and status.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DEMO_DIR:-$PWD/demo}
BIN=$PWD/bin/hotstandby
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
  step "installing MariaDB from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq mariadb-server mariadb-client >/dev/null
fi
step "building hotstandby"
go build -o "$BIN" ./cmd/hotstandby

"$BIN" sandbox down --dir "$DIR" >/dev/null 2>&1 || true
rm -rf "$DIR"
step "starting a sandbox master and standby on 127.0.0.1"
"$BIN" sandbox up --dir "$DIR"
CFG=$DIR/hotstandby.toml
M="mariadb --defaults-file=$DIR/master/my.cnf"

AGENT_PID=
cleanup() {
  [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then "$BIN" sandbox down --dir "$DIR" >/dev/null; else echo "servers left running (KEEP=1): $BIN sandbox down --dir $DIR"; fi
}
trap cleanup EXIT
start_agent() {
  "$BIN" run --config "$CFG" >>"$DIR/agent.log" 2>&1 &
  AGENT_PID=$!
  # Wait for this agent's own word, not the master's client count: a killed
  # agent's dump thread may still be counted for a moment.
  local st
  for _ in $(seq 100); do
    st=$("$BIN" status --config "$CFG" --json 2>/dev/null || true)
    if [[ $st == *'"daemon": "running"'* && $st == *'"state": "streaming"'* ]] &&
       [ "$($M -N -e "SHOW STATUS LIKE 'Rpl_semi_sync_master_clients'" | cut -f2)" = 1 ]; then
      return
    fi
    sleep 0.1
  done
  echo "the agent did not connect; its log:"; cat "$DIR/agent.log"; exit 1
}
commits() { # $1 transactions from 8 clients
  local per=$(( $1 / 8 )) pids=()
  for c in $(seq 8); do
    ( for i in $(seq "$per"); do echo "INSERT INTO demo.orders (customer, amount, created) VALUES ('c$c', $i.99, NOW(6));"; done | $M ) &
    pids+=($!)
  done
  wait "${pids[@]}"
}
semisync() { $M -N -e "SHOW STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status','Rpl_semi_sync_master_clients','Rpl_semi_sync_master_yes_tx','Rpl_semi_sync_master_no_tx')" | sed 's/^/  master: /'; }

step "running the agent (log: $DIR/agent.log)"
start_agent
{ grep -E "first run|streaming|preflight" "$DIR/agent.log" || true; } | sed 's/^/  /'

step "2,000 transactions from 8 clients; every commit waits for the agent's fsync+ACK"
commits 2000
semisync

S="mariadb --defaults-file=$DIR/standby/my.cnf"
caught_up() {
  for _ in $(seq 300); do
    [ "$($S -N -e 'SELECT @@gtid_binlog_pos')" = "$($M -N -e 'SELECT @@gtid_binlog_pos')" ] && return
    sleep 0.1
  done
}
caught_up
step "the rows are on the standby, with the master's GTIDs"
echo "  master:  $($M -N -e 'SELECT COUNT(*), SUM(amount) FROM demo.orders')   gtid_binlog_pos $($M -N -e 'SELECT @@gtid_binlog_pos')"
echo "  standby: $($S -N -e 'SELECT COUNT(*), SUM(amount) FROM demo.orders')   gtid_binlog_pos $($S -N -e 'SELECT @@gtid_binlog_pos')"

step "hotstandby status"
"$BIN" status --config "$CFG"

step "kill -9 the agent while clients commit, then start it again"
commits 800 & LOAD=$!
sleep 0.3
kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
echo "  agent killed"
start_agent
wait $LOAD
{ grep -E "resuming|recovered|previous dump" "$DIR/agent.log" || true; } | tail -3 | sed 's/^/  /'
semisync
"$BIN" status --config "$CFG" --json | sed -n '1,40p'

step "hotstandby verify: every table of master and standby, compared at one GTID position"
caught_up
"$BIN" verify --config "$CFG"

step "stopping the agent; status now comes from its checkpoint"
kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=
"$BIN" status --config "$CFG"

step "the relay log is a valid binlog: mariadb-binlog reads its segments"
SEG=$(ls "$DIR"/agent/relay/relay-* | tail -1)
mariadb-binlog --base64-output=never "$SEG" | { grep -E "^#.*(GTID|Xid)" || true; } | tail -4 | sed 's/^/  /'


step "failover: the agent with [failover] mode = \"auto\"; the master is killed with kill -9 under load"
printf '\n[failover]\nmode = "auto"\n' >>"$CFG"
start_agent
for _ in $(seq 200); do
  "$BIN" status --config "$CFG" --json 2>/dev/null | grep -q '"promotion_lossless_now": true' && break
  sleep 0.1
done
"$BIN" status --config "$CFG" | grep -A3 '^failover:' | sed 's/^/  /'
OK=$DIR/committed-ids
: >"$OK"
writer() { # one client: every id whose COMMIT returned OK goes to $OK
  local id=$1
  while $M -e "INSERT INTO demo.orders (id, customer, amount, created) VALUES ($id, 'failover', 1.00, NOW(6))" 2>/dev/null; do
    echo "$id" >>"$OK"
    id=$((id + 8))
  done
}
WPIDS=()
for c in $(seq 8); do writer $((1000000 + c)) & WPIDS+=($!); done
while [ "$(wc -l <"$OK")" -lt 300 ]; do sleep 0.1; done
KILLED_AT=$(date +%s.%N)
kill -9 "$(cat "$DIR/master/mariadbd.pid")"
echo "  master killed with kill -9 after $(wc -l <"$OK") OK'd commits"
wait "${WPIDS[@]}" 2>/dev/null || true
for _ in $(seq 300); do "$BIN" status --config "$CFG" --is-master >/dev/null 2>&1 && break; sleep 0.05; done
echo "  promoted $(awk -v a="$KILLED_AT" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s after the kill (measured by this script's polling)"
{ grep -E "master is dead|promoting|drained|promoted" "$DIR/agent.log" || true; } | tail -4 | sed 's/^/  /'
N=$(wc -l <"$OK")
HAVE=$($S -N -e "SELECT COUNT(*) FROM demo.orders WHERE id IN ($(paste -sd, "$OK"))")
echo "  commits that returned OK to a client: $N; of them on the new master: $HAVE"
[ "$N" = "$HAVE" ] || { echo "  LOST $((N - HAVE)) committed transactions"; exit 1; }
$S -e "INSERT INTO demo.orders (customer, amount, created) VALUES ('after failover', 1.00, NOW(6))"
echo "  the new master takes writes: read_only=$($S -N -e 'SELECT @@read_only')"
"$BIN" status --config "$CFG" | grep -E '^(daemon|failover|audit):|^             (mode|promotion|reason)' | sed 's/^/  /'
