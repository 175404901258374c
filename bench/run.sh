#!/usr/bin/env bash
# jwtd's benchmark suite, one command: `bench/run.sh`.
#
# Builds release binaries; starts the baseline (a minimal poem server, same JSON body, no token
# work) and jwtd on loopback, on SQLite (the embedded default) and on Redis, and on PostgreSQL
# when BENCH_POSTGRES_URL is set; drives every scenario with bench/src/bin/load.rs; prints one
# table. Every scenario starts a fresh server process, so its peak RSS is its own. Load and
# server share the machine's cores: only the ratios of one run mean anything.
#
# Knobs: DURATION (s, default 10), CONNECTIONS (default 64), FLOOD (registration workers beside
# one login in obtain-under-registration, default 256), REDIS_URL (default
# redis://127.0.0.1:6379, Redis >= 7), BENCH_POSTGRES_URL (a database jwtd may own),
# ONLY_CONFIGS / ONLY_SCENARIOS (space-separated subsets, e.g. ONLY_SCENARIOS="refresh"
# while working on one path; the baseline always runs).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
PORT=8931
BIN=${CARGO_TARGET_DIR:-target}/release
WORK=$(mktemp -d)
RESULTS=bench/results/$(date -u +%Y%m%dT%H%M%SZ).jsonl
mkdir -p bench/results

cargo build --release -q -p jwtd -p jwtd-bench

SERVER_PID=
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT

wait_for_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "server did not start on $PORT" >&2
    exit 1
}

# jwtd with the environment of one configuration ($1: sqlite | redis | postgres | eddsa).
jwtd_env() {
    local config=$1
    echo "JWTD__SERVER__BIND=127.0.0.1:$PORT"
    echo "JWTD__LOG__LEVEL=warn"
    echo "JWTD__JWT__ACCESS_TOKEN_LIFETIME=1h"
    echo "JWTD__PASSWORD__HASH_QUEUE_TIMEOUT=30s"
    # One client address logs in thousands of times: no per-address limit here.
    echo "JWTD__THROTTLE__CLIENT_ATTEMPTS=0"
    # The registration flood comes through a "proxy" on loopback, from many addresses.
    echo "JWTD__SERVER__TRUSTED_PROXIES=127.0.0.1"
    case $config in
        postgres) echo "JWTD__DATABASE__URL=$BENCH_POSTGRES_URL" ;;
        *) echo "JWTD__DATABASE__URL=sqlite://$WORK/jwtd.db?mode=rwc" ;;
    esac
    case $config in
        redis | eddsa)
            echo "JWTD__REVOCATION__STORE=redis"
            echo "JWTD__REDIS__URL=$REDIS_URL"
            echo "JWTD__REDIS__KEY_PREFIX=jwtd-bench-$$"
            ;;
    esac
    if [[ $config == eddsa ]]; then
        echo "JWTD__JWT__ALGORITHM=EdDSA"
        echo "JWTD__JWT__PRIVATE_KEY_FILE=$EDDSA_KEY"
    fi
}

start_jwtd() {
    stop_server
    env $(jwtd_env "$1") "$BIN/jwtd" serve >"$WORK/jwtd.log" 2>&1 &
    SERVER_PID=$!
    wait_for_port
}

start_baseline() {
    stop_server
    "$BIN/baseline" "127.0.0.1:$PORT" >"$WORK/baseline.log" 2>&1 &
    SERVER_PID=$!
    wait_for_port
}

peak_rss_mb() {
    awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"
}

# load LABEL SCENARIO [load args…]: one JSON row, with the server's peak RSS added.
load() {
    local label=$1 scenario=$2
    shift 2
    local row
    row=$("$BIN/load" --url "http://127.0.0.1:$PORT" --scenario "$scenario" \
        --connections "$CONNECTIONS" --duration "$DURATION" --label "$label" "$@")
    echo "${row%\}},\"peak_rss_mb\":$(peak_rss_mb)}"
}

# with FIELD JSON_ROW VALUE: the row with one more field.
with() {
    echo "${2%\}},\"$1\":$3}"
}

# The machine's speed drifts within a run (shared cores, other tenants), so every scenario is
# compared with a reference measured around it: the baseline server just before and just after
# (the after of one scenario is the before of the next), or, for logins, the argon2 bound.
# measure_baseline sets REFERENCE (not in a subshell: it starts a server).
measure_baseline() {
    start_baseline
    REFERENCE=$(load baseline verify --token "$(printf 'x%.0s' $(seq 1 300))" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["rps"])')
}
BASELINE_BEFORE= # the last baseline measured, if nothing has run since

# measure CONFIG SCENARIO: one row of the table, with its reference.
measure() {
    local config=$1 scenario=$2 row
    if [[ $scenario == obtain ]]; then
        local bound
        bound=$("$BIN/argon2_bound")
        start_jwtd "$config"
        row=$(CONNECTIONS=8 load "obtain $config" obtain)
        row=$(with argon2 "$row" "$bound")
        BASELINE_BEFORE=
    elif [[ $scenario == obtain-under-registration ]]; then
        # One login at a time, alone and then beside the flood, each on a fresh server.
        local alone
        start_jwtd "$config"
        alone=$(CONNECTIONS=1 load "obtain alone $config" obtain)
        start_jwtd "$config"
        row=$(CONNECTIONS=1 load "$scenario $config" "$scenario" \
            --background-connections "${FLOOD:-256}")
        row=$(with alone "$row" "$alone")
        BASELINE_BEFORE=
    else
        if [[ -z $BASELINE_BEFORE ]]; then
            measure_baseline
            BASELINE_BEFORE=$REFERENCE
        fi
        start_jwtd "$config"
        row=$(load "$scenario $config" "$scenario")
        measure_baseline
        row=$(with baseline_rps "$row" "[$BASELINE_BEFORE, $REFERENCE]")
        BASELINE_BEFORE=$REFERENCE
    fi
    echo "$row" | tee -a "$RESULTS" >&2
}

# The bench user, and an EdDSA key, in each database.
EDDSA_KEY=$("$BIN/jwtd" keys generate --alg EdDSA --out-dir "$WORK/keys" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["private_key_file"])')
create_user() {
    env $(jwtd_env "$1") "$BIN/jwtd" users create --username alice \
        --password "correct horse battery staple" >/dev/null
}
create_user sqlite
CONFIGS=(sqlite redis eddsa)
if [[ -n "${BENCH_POSTGRES_URL:-}" ]]; then
    create_user postgres
    CONFIGS+=(postgres)
fi

selected() { # selected LIST ITEM: is ITEM in LIST (or LIST empty)?
    [[ -z "$1" || " $1 " == *" $2 "* ]]
}
# verify-under-obtain right after verify: it is compared with verify alone.
SCENARIOS=(verify verify-under-obtain me refresh obtain obtain-under-registration)
for config in "${CONFIGS[@]}"; do
    selected "${ONLY_CONFIGS:-}" "$config" || continue
    for scenario in "${SCENARIOS[@]}"; do
        selected "${ONLY_SCENARIOS:-}" "$scenario" || continue
        measure "$config" "$scenario"
    done
done
if selected "${ONLY_CONFIGS:-}" redis && selected "${ONLY_SCENARIOS:-}" verify; then
    BASELINE_BEFORE= # measured again, at 256 connections
    CONNECTIONS=256 measure redis verify
fi
stop_server

python3 bench/table.py "$RESULTS"
