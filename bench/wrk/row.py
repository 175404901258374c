"""wrk's report (with --latency) on stdin as one JSON row like bench/src/bin/load.rs's.
Errors are wrk's socket errors and every answer that is not 2xx or 3xx.
Usage: row.py LABEL CONNECTIONS DURATION"""

import json
import re
import sys

label, connections, duration = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
report = sys.stdin.read()
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def percentile_ms(p):
    match = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", report, re.M)
    return float(match.group(1)) * UNITS[match.group(2)] if match else 0.0


requests = int(re.search(r"(\d+) requests in", report).group(1))
errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", report))
non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
errors += int(non_2xx.group(1)) if non_2xx else 0
print(json.dumps({
    "label": label,
    "generator": "wrk",
    "connections": connections,
    "requests": requests,
    "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", report).group(1)),
    "p50_ms": percentile_ms(50),
    "p99_ms": percentile_ms(99),
    "errors": errors,
}))
