#!/usr/bin/env bash
# jwtd's benchmark suite, one command: `bench/run.sh`.
#
# Builds release binaries; starts the baseline (a minimal poem server, same JSON body, no token
# work) and jwtd on loopback, on SQLite (the embedded default) and on Redis, and on PostgreSQL
# when BENCH_POSTGRES_URL is set, with its default logging; drives the scenarios with two
# generators: bench/src/bin/load.rs (every scenario; refreshes chain their tokens) and wrk (the
# fixed-body ones; a C generator leaves the server more of the cores, so jwtd's own costs show),
# each with its own baseline; prints one table. Every scenario starts a fresh server process,
# so its peak RSS is its own. Load and server share the machine's cores: only the ratios of one
# run mean anything.
#
# Knobs: DURATION (s, default 10), CONNECTIONS (load.rs workers, default 64), WRK_CONNECTIONS
# (default 32), FLOOD (registration workers beside one login in obtain-under-registration,
# default 256), FEED_POLLERS (long-polling verifiers beside verify-with-feed, default 100),
# REDIS_URL (default redis://127.0.0.1:6379, Redis >= 7), BENCH_POSTGRES_URL (a database jwtd
# may own), ONLY_CONFIGS / ONLY_SCENARIOS (space-separated subsets, e.g.
# ONLY_SCENARIOS="refresh" while working on one path; the baselines always run),
# ONLY_GENERATORS ("load", "wrk" or both).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-32}
FEED_POLLERS=${FEED_POLLERS:-100}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
PORT=8931
BIN=${CARGO_TARGET_DIR:-target}/release
WORK=$(mktemp -d)
RESULTS=bench/results/$(date -u +%Y%m%dT%H%M%SZ).jsonl
mkdir -p bench/results

cargo build --release -q -p jwtd -p jwtd-bench
if ! command -v wrk >/dev/null; then
    echo "bench: installing wrk (Debian's package)" >&2
    SUDO=$([[ $(id -u) == 0 ]] || echo sudo)
    $SUDO apt-get install -y -q wrk >/dev/null
fi

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
    echo "JWTD__JWT__ACCESS_TOKEN_LIFETIME=1h"
    echo "JWTD__PASSWORD__HASH_QUEUE_TIMEOUT=30s"
    # One client address logs in thousands of times: no per-address limit here. And one account
    # from many workers at once: the lockout reserves a failure per password check in flight, so
    # more concurrent logins than account_free_failures (5) would be refused like wrong passwords.
    echo "JWTD__THROTTLE__CLIENT_ATTEMPTS=0"
    echo "JWTD__THROTTLE__ACCOUNT_FREE_FAILURES=1000"
    # The registration flood comes through a "proxy" on loopback, from many addresses.
    echo "JWTD__SERVER__TRUSTED_PROXIES=127.0.0.1"
    # The browser transport, over plain HTTP (cookie-refresh).
    echo "JWTD__COOKIES__ENABLED=true"
    echo "JWTD__COOKIES__SECURE=false"
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
    # A scenario's own settings (verify-no-lease turns the revocation lease off, verify-uncached
    # that and the cache of verified tokens).
    if [[ -n ${SCENARIO_ENV:-} ]]; then echo "$SCENARIO_ENV"; fi
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
    echo "${row%\}},\"generator\":\"load\",\"peak_rss_mb\":$(peak_rss_mb)}"
}

# wrk_load LABEL PATH [BODY]: one JSON row, as load's, from wrk (a POST of BODY when given),
# after a one-second warm-up.
wrk_load() {
    local label=$1 path=$2 body=${3:-} script=()
    [[ -n $body ]] && script=(-s bench/wrk/post.lua)
    WRK_BODY=$body wrk -t2 -c"$WRK_CONNECTIONS" -d1s "${script[@]}" \
        "http://127.0.0.1:$PORT$path" >/dev/null
    WRK_BODY=$body wrk -t2 -c"$WRK_CONNECTIONS" -d"${DURATION}s" --latency "${script[@]}" \
        "http://127.0.0.1:$PORT$path" >"$WORK/wrk.txt"
    local row
    row=$(python3 bench/wrk/row.py "$label" "$WRK_CONNECTIONS" "$DURATION" <"$WORK/wrk.txt")
    echo "${row%\}},\"peak_rss_mb\":$(peak_rss_mb)}"
}

# An access token of the bench user, from the running jwtd.
access_token() {
    curl -sf -H 'Content-Type: application/json' \
        -d '{"username":"alice","password":"correct horse battery staple"}' \
        "http://127.0.0.1:$PORT/api/token/" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["access"])'
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
    local token row
    token=$(printf 'x%.0s' $(seq 1 300))
    if [[ $GENERATOR == wrk ]]; then
        row=$(wrk_load baseline /api/token/verify "{\"token\":\"$token\"}")
    else
        row=$(load baseline verify --token "$token")
    fi
    REFERENCE=$(echo "$row" | python3 -c 'import json, sys; print(json.load(sys.stdin)["rps"])')
}
BASELINE_BEFORE= # the last baseline measured with $GENERATOR, if nothing has run since

# wrk_scenario CONFIG SCENARIO: one row from wrk against the running jwtd.
wrk_scenario() {
    local config=$1 scenario=$2 body
    case $scenario in
        health) wrk_load "$scenario $config" /health/live ;;
        verify | verify-256 | verify-no-lease | verify-uncached)
            body="{\"token\":\"$(access_token)\"}"
            wrk_load "$scenario $config" /api/token/verify/ "$body"
            ;;
        verify-with-feed)
            # Verify while FEED_POLLERS verifiers long-poll the feed, beside wrk.
            local client pollers row
            client=$(env $(jwtd_env "$config") "$BIN/jwtd" clients create --name "feed-$RANDOM" \
                --grant client_credentials --scope revocations:read --json |
                python3 -c 'import json, sys; c = json.load(sys.stdin); print(c["client_id"] + ":" + c["client_secret"])')
            body="{\"token\":\"$(access_token)\"}"
            "$BIN/load" --url "http://127.0.0.1:$PORT" --scenario verify --duration $((DURATION + 1)) \
                --warmup 1 --feed-pollers "$FEED_POLLERS" --feed-client "$client" >"$WORK/feed.json" &
            pollers=$!
            sleep 1 # the pollers are waiting
            row=$(wrk_load "$scenario $config" /api/token/verify/ "$body")
            wait "$pollers"
            with feed "$row" "$(cat "$WORK/feed.json")"
            ;;
    esac
}

# measure CONFIG SCENARIO: one row of the table, with its reference.
measure() {
    local config=$1 scenario=$2 row
    if [[ $GENERATOR == wrk ]]; then
        [[ -n $BASELINE_BEFORE ]] || { measure_baseline && BASELINE_BEFORE=$REFERENCE; }
        case $scenario in
            verify-no-lease) SCENARIO_ENV="JWTD__REVOCATION__LEASE=0s" start_jwtd "$config" ;;
            verify-uncached)
                SCENARIO_ENV="JWTD__JWT__VERIFIED_CACHE_BYTES=0 JWTD__REVOCATION__LEASE=0s" \
                    start_jwtd "$config"
                ;;
            *) start_jwtd "$config" ;;
        esac
        row=$(wrk_scenario "$config" "$scenario")
        measure_baseline
        row=$(with baseline_rps "$row" "[$BASELINE_BEFORE, $REFERENCE]")
        BASELINE_BEFORE=$REFERENCE
    elif [[ $scenario == obtain ]]; then
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
        row=$(load "$scenario $config" "${scenario%-256}")
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
# verify-under-obtain right after verify: it is compared with verify alone; cookie-refresh
# right after refresh, and verify-with-feed right after verify (wrk), likewise.
LOAD_SCENARIOS=(verify verify-under-obtain me refresh cookie-refresh obtain obtain-under-registration)
WRK_SCENARIOS=(health verify verify-with-feed verify-no-lease verify-uncached)
for GENERATOR in load wrk; do
    selected "${ONLY_GENERATORS:-}" "$GENERATOR" || continue
    BASELINE_BEFORE=
    for config in "${CONFIGS[@]}"; do
        selected "${ONLY_CONFIGS:-}" "$config" || continue
        scenarios=("${LOAD_SCENARIOS[@]}")
        [[ $GENERATOR == wrk ]] && scenarios=("${WRK_SCENARIOS[@]}")
        for scenario in "${scenarios[@]}"; do
            selected "${ONLY_SCENARIOS:-}" "$scenario" || continue
            # What health measures (the request path alone) does not depend on the store.
            [[ $scenario == health && $config != sqlite ]] && continue
            measure "$config" "$scenario"
        done
    done
    # Peak memory at 256 connections.
    if selected "${ONLY_CONFIGS:-}" redis && selected "${ONLY_SCENARIOS:-}" verify-256; then
        BASELINE_BEFORE= # measured again, at 256 connections
        CONNECTIONS=256 WRK_CONNECTIONS=256 measure redis verify-256
    fi
done
stop_server

python3 bench/table.py "$RESULTS"
