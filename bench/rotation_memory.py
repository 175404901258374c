#!/usr/bin/env python3
"""Redis memory that rotation state costs: per live session, and per refresh.

Starts a Redis of its own (nothing else in it) and jwtd on it, logs SESSIONS sessions in, then
refreshes every session ROUNDS times (each chaining its own rotated token), reading Redis's
`used_memory` and key count after the logins, after the first round and after the last.
Prints one JSON line. Run by hand:

    cargo build --release && python3 bench/rotation_memory.py target/release/jwtd

Knobs (environment): SESSIONS (default 2000), ROUNDS (default 10), THREADS (default 16).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

SESSIONS = int(os.environ.get("SESSIONS", 2000))
ROUNDS = int(os.environ.get("ROUNDS", 10))
THREADS = int(os.environ.get("THREADS", 16))
PASSWORD = "correct horse battery staple"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def post(base, path, body):
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:
        sys.exit(f"{path}: {err.code} {err.read().decode()}")


def redis_figures(port):
    info = subprocess.run(
        ["redis-cli", "-p", str(port), "info", "memory"], capture_output=True, text=True, check=True
    ).stdout
    used = next(int(line.split(":")[1]) for line in info.splitlines() if line.startswith("used_memory:"))
    keys = int(subprocess.run(["redis-cli", "-p", str(port), "dbsize"], capture_output=True, text=True, check=True).stdout)
    return used, keys


def main():
    jwtd = sys.argv[1]
    redis_port, jwtd_port = free_port(), free_port()
    work = tempfile.mkdtemp()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no", "--dir", work],
        stdout=subprocess.DEVNULL,
    )
    env = dict(
        os.environ,
        JWTD__SERVER__BIND=f"127.0.0.1:{jwtd_port}",
        JWTD__DATABASE__URL=f"sqlite://{work}/jwtd.db?mode=rwc",
        JWTD__REVOCATION__STORE="redis",
        JWTD__REDIS__URL=f"redis://127.0.0.1:{redis_port}",
        JWTD__THROTTLE__CLIENT_ATTEMPTS="0",
        # Concurrent logins to one account reserve lockout places before their passwords are
        # checked; many at once would lock it. Not what is measured here.
        JWTD__THROTTLE__ACCOUNT_FREE_FAILURES="1000000",
        JWTD__LOG__LEVEL="warn",
        JWTD__PASSWORD__HASH_QUEUE_TIMEOUT="60s",
    )
    server = subprocess.Popen([jwtd, "serve"], env=env)
    try:
        wait_for(redis_port)
        wait_for(jwtd_port)
        base = f"http://127.0.0.1:{jwtd_port}"
        post(base, "/api/users/", {"username": "alice", "password": PASSWORD})
        with ThreadPoolExecutor(THREADS) as pool:
            login = lambda _: post(base, "/api/token/", {"username": "alice", "password": PASSWORD})["refresh"]
            tokens = list(pool.map(login, range(SESSIONS)))
            logged_in = redis_figures(redis_port)
            refresh = lambda token: post(base, "/api/token/refresh/", {"refresh": token})["refresh"]
            tokens = list(pool.map(refresh, tokens))
            first_round = redis_figures(redis_port)
            for _ in range(ROUNDS - 1):
                tokens = list(pool.map(refresh, tokens))
            last_round = redis_figures(redis_port)
        print(json.dumps({
            "sessions": SESSIONS,
            "refreshes": SESSIONS * ROUNDS,
            "keys": {"logged_in": logged_in[1], "after_first_round": first_round[1], "after_last_round": last_round[1]},
            "bytes_per_session": round((first_round[0] - logged_in[0]) / SESSIONS),
            "bytes_per_refresh_after_the_first": round((last_round[0] - first_round[0]) / (SESSIONS * (ROUNDS - 1)), 2),
        }))
    finally:
        server.terminate()
        redis.terminate()
        server.wait()
        redis.wait()


if __name__ == "__main__":
    main()
