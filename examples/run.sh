#!/usr/bin/env bash
# The local multi-region demo of sessionpin (`make run`):
#   discovery service with its embedded etcd,
#   four unchanged demo backends (eu-1, eu-2 in eu-west; us-1, us-2 in us-east),
#   a heartbeat agent for each, and
#   two Caddy edges from the root Caddyfile (eu-west on :8080, us-east on :8081)
#   sharing one freshly generated pin secret.
# Ctrl-C (or SIGTERM) stops every process this script started.
#
# Environment: SESSIONPIN_DEMO_DIR (default ./data/demo) holds etcd data
# (kept between runs; stale registrations expire with their leases) and logs
# (replaced each run). SESSIONPIN_DEMO_REPLICATION_DELAY (default 5s).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=./bin
DEMO_DIR=${SESSIONPIN_DEMO_DIR:-./data/demo}
LOG_DIR=$DEMO_DIR/logs
REPLICATION_DELAY=${SESSIONPIN_DEMO_REPLICATION_DELAY:-5s}
DISCOVERY=http://127.0.0.1:7070

# id region public-port admin-port
BACKENDS=(
  "eu-1 eu-west 9001 9101"
  "eu-2 eu-west 9002 9102"
  "us-1 us-east 9003 9103"
  "us-2 us-east 9004 9104"
)
# region listen-port caddy-admin-port
EDGES=(
  "eu-west 8080 2019"
  "us-east 8081 2020"
)

die() { echo "run.sh: $*" >&2; exit 1; }

command -v curl >/dev/null || die "curl is needed to wait for the edges; install it (apt-get install curl)"

for b in caddy discoverysvc demo-backend; do
  if [ ! -x "$BIN/$b" ]; then
    echo "building (make build)…"
    make build
    break
  fi
done

# A port already taken means another demo (or something else) is running; say
# so instead of starting half a demo.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in 2379 2380 7070 8080 8081 2019 2020 9001 9002 9003 9004 9101 9102 9103 9104; do
  if port_in_use "$p"; then
    die "port $p is in use (is another 'make run' still running?); stop it first"
  fi
done

mkdir -p "$DEMO_DIR/etcd"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

# Every process started here, in start order, with a name for messages.
PIDS=()
NAMES=()

# Job control puts each process in its own process group. Ctrl-C then
# reaches only this script, which stops the demo in order (agents deregister
# while discovery still answers) and signals each whole group, so nothing a
# process started is left behind.
set -m

TIERS=()
start() { # tier name cmd...  (logs to $LOG_DIR/name.log)
  local tier=$1 name=$2
  shift 2
  "$@" >"$LOG_DIR/$name.log" 2>&1 &
  PIDS+=("$!")
  NAMES+=("$name")
  TIERS+=("$tier")
}

stopping=0
cleanup() {
  [ "$stopping" = 1 ] && return
  stopping=1
  # Stopping must finish even when the terminal or a `| tee` is gone: a
  # failed echo must neither abort the script (set -e) nor kill it (SIGPIPE).
  set +e
  trap '' INT TERM HUP PIPE
  echo
  echo "stopping the demo…"
  # Reverse start order, one tier at a time: agents deregister their
  # servers while discovery still answers, then edges, backends, discovery.
  local i tier
  for tier in agent edge backend discovery; do
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
      if [ "${TIERS[$i]}" = "$tier" ]; then
        kill -TERM -- "-${PIDS[$i]}" 2>/dev/null || true
      fi
    done
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
      [ "${TIERS[$i]}" = "$tier" ] || continue
      local deadline=$((SECONDS + 10))
      while kill -0 -- "-${PIDS[$i]}" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.1
      done
      if kill -0 -- "-${PIDS[$i]}" 2>/dev/null; then
        echo "  ${NAMES[$i]} did not stop in time; killing it"
        kill -KILL -- "-${PIDS[$i]}" 2>/dev/null || true
      fi
    done
  done
  wait 2>/dev/null || true
  echo "stopped. Logs: $LOG_DIR/"
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap 'cleanup; exit 129' HUP
trap 'cleanup' EXIT

# fail_if_dead stops the demo when a process exited during start-up.
fail_if_dead() {
  local i
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      echo "run.sh: ${NAMES[$i]} exited during start-up; its log:" >&2
      tail -n 20 "$LOG_DIR/${NAMES[$i]}.log" >&2 || true
      exit 1
    fi
  done
}

# wait_http url what: wait until url answers 200.
wait_http() {
  local url=$1 what=$2 deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    fail_if_dead
    [ "$SECONDS" -lt "$deadline" ] || die "$what did not answer $url within 60s; see $LOG_DIR/"
    sleep 0.2
  done
}

rand_secret() { head -c 32 /dev/urandom | base64 | tr -d '\n'; }
PIN_SECRET=$(rand_secret)      # the edges' pin key, shared by both edges
APP_KEY=$(rand_secret)         # the demo app's own token key, shared by the backends
ADMIN_TOKEN=$(rand_secret)     # discovery's admin token; each agent gets its own token from it
# A read-only token for the fleet page and dashboards. Base64url, so that it
# goes into a URL fragment as it is.
READ_TOKEN=$(head -c 32 /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_')

# Files, not flags: a flag's value shows in the process list. Kept for the
# operator's own writes (drains, undrains) and reads while the demo runs.
(umask 077 && printf '%s\n' "$ADMIN_TOKEN" >"$DEMO_DIR/discovery-token" &&
  printf '%s\n' "$READ_TOKEN" >"$DEMO_DIR/discovery-read-token")

echo "starting discovery (embedded etcd, data in $DEMO_DIR/etcd)…"
# The demo's servers all listen on 127.0.0.1, which discovery refuses
# unless told that loopback is fine here.
start discovery discovery "$BIN/discoverysvc" serve --data-dir "$DEMO_DIR/etcd" --allow-loopback \
  --token-file "$DEMO_DIR/discovery-token" --read-token-file "$DEMO_DIR/discovery-read-token"
wait_http "$DISCOVERY/healthz" "discovery"

echo "starting backends…"
for b in "${BACKENDS[@]}"; do
  read -r id region port admin <<<"$b"
  peers=""
  for o in "${BACKENDS[@]}"; do
    read -r oid _ oport _ <<<"$o"
    [ "$oid" = "$id" ] || peers+="${peers:+,}http://127.0.0.1:$oport"
  done
  start backend "$id" env DEMO_BACKEND_TOKEN_KEY="$APP_KEY" "$BIN/demo-backend" \
    --id "$id" --region "$region" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
    --peers "$peers" --replication-delay "$REPLICATION_DELAY"
done
for b in "${BACKENDS[@]}"; do
  read -r id _ port _ <<<"$b"
  wait_http "http://127.0.0.1:$port/healthz" "backend $id"
done

echo "starting agents…"
for b in "${BACKENDS[@]}"; do
  read -r id region port _ <<<"$b"
  # An agent token writes this server's record and nothing else.
  agent_token=$("$BIN/discoverysvc" token --token-file "$DEMO_DIR/discovery-token" "$id")
  start agent "agent-$id" env SESSIONPIN_DISCOVERY_TOKEN="$agent_token" "$BIN/discoverysvc" agent \
    --id "$id" --region "$region" --url "http://127.0.0.1:$port" \
    --health-url "http://127.0.0.1:$port/healthz" --discovery "$DISCOVERY" --interval 1s
done

# Edges started now see every server in their first listing.
deadline=$((SECONDS + 60))
until [ "$(curl -fsS --max-time 2 -H "Authorization: Bearer $READ_TOKEN" "$DISCOVERY/v1/servers" 2>/dev/null | grep -o '"id"' | wc -l)" -eq "${#BACKENDS[@]}" ]; do
  fail_if_dead
  [ "$SECONDS" -lt "$deadline" ] || die "the agents did not register all ${#BACKENDS[@]} servers within 60s; see $LOG_DIR/"
  sleep 0.2
done

echo "starting edges…"
for e in "${EDGES[@]}"; do
  read -r region port admin <<<"$e"
  # Separate Caddy config/data dirs, so two edges on one host do not share
  # autosave files.
  start edge "edge-$region" env \
    SESSIONPIN_LISTEN=":$port" SESSIONPIN_ADMIN="localhost:$admin" SESSIONPIN_REGION="$region" \
    SESSIONPIN_ETCD=127.0.0.1:2379 SESSIONPIN_SECRET="$PIN_SECRET" \
    XDG_CONFIG_HOME="$DEMO_DIR/caddy-$region/config" XDG_DATA_HOME="$DEMO_DIR/caddy-$region/data" \
    "$BIN/caddy" run --config Caddyfile --adapter caddyfile
done
for e in "${EDGES[@]}"; do
  read -r region port _ <<<"$e"
  wait_http "http://127.0.0.1:$port/closestToMe" "edge $region"
done

cat <<TXT

sessionpin demo is up.

  edge eu-west   http://127.0.0.1:8080    (Caddy admin localhost:2019)
  edge us-east   http://127.0.0.1:8081    (Caddy admin localhost:2020)
  discovery      $DISCOVERY    (embedded etcd 127.0.0.1:2379; admin token in $DEMO_DIR/discovery-token,
                 read-only token in $DEMO_DIR/discovery-read-token)
  fleet page     $DISCOVERY/#token=$READ_TOKEN
                 (live: regions, load, drains; the read-only token rides in the fragment,
                 which the browser never sends; paste the admin token to drain from it)
  backends       eu-1 :9001  eu-2 :9002 (eu-west)   us-1 :9003  us-2 :9004 (us-east)
                 admin :9101..:9104, replication delay $REPLICATION_DELAY
  logs           $LOG_DIR/

Try:
  curl -s localhost:8080/closestToMe          # a server in eu-west
  curl -s localhost:8081/closestToMe          # a server in us-east
  READ=\$(cat $DEMO_DIR/discovery-read-token)
  curl -s localhost:7070/v1/servers -H "Authorization: Bearer \$READ"   # the registry

  # log in through the eu-west edge: the edge pins you (X-Session-Server, X-Session-Pin)
  PIN=\$(curl -si -X POST localhost:8080/auth/login -d '{"user":"alice"}' | tr -d '\r' | sed -n 's/^X-Session-Pin: //Ip')
  curl -si localhost:8081/whoami -H "X-Session-Pin: \$PIN"   # the us-east edge honours it
  curl -s -X POST localhost:9101/admin/down   # take eu-1 down (…/admin/up brings it back)

  # drain eu-1: no new clients; wait until its pinned clients have moved
  # (the edges report their pinned traffic every 5s), then undrain it
  export SESSIONPIN_DISCOVERY_TOKEN=\$(cat $DEMO_DIR/discovery-token)
  $BIN/discoverysvc drain eu-1 --wait --quiet 20s
  curl -s localhost:7070/v1/servers/eu-1/drain -H "Authorization: Bearer \$SESSIONPIN_DISCOVERY_TOKEN"
  $BIN/discoverysvc undrain eu-1

  open '$DISCOVERY/#token=$READ_TOKEN'   # the fleet page, live from /v1/events
  open http://127.0.0.1:8080/demo/            # the browser client (examples/web)
  curl -N localhost:7070/v1/events -H "Authorization: Bearer \$READ"   # the fleet's changes as Server-Sent Events
  curl -s localhost:7070/metrics              # discovery's metrics (sessionpin_discovery_*)
  make demo-client                            # the whole walkthrough, in another terminal

Ctrl-C stops everything.
TXT

# Stay in the foreground until interrupted; report a process that dies.
reported=()
while true; do
  for i in "${!PIDS[@]}"; do
    if [ -z "${reported[$i]:-}" ] && ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      reported[$i]=1
      echo "warning: ${NAMES[$i]} exited; see $LOG_DIR/${NAMES[$i]}.log" >&2
    fi
  done
  sleep 1 &
  wait $! || true
done
