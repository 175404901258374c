"""Prints bench/run.sh's JSON lines as one table. Each row's rate is a ratio to the reference
measured around it in the same run, with the same generator: the mean of the baseline server
just before and just after it, or for logins the argon2 bound; verify-under-obtain and
verify-with-feed are compared with verify alone on the same store, cookie-refresh with refresh,
and a login beside a registration flood with a login alone."""

import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
# The row another is compared with: (generator, scenario, store) -> req/s.
alone_rps = {}
for row in rows:
    scenario, store = row["label"].split()[0], row["label"].split()[-1]
    alone_rps.setdefault((row.get("generator"), scenario, store), row["rps"])
COMPARED_WITH = {"verify-under-obtain": "verify", "verify-with-feed": "verify",
                 "cookie-refresh": "refresh"}


def reference(row):
    label = row["label"]
    if "argon2" in row:
        bound = row["argon2"]
        return (f"{row['rps'] / bound['bound_rps']:.2f} x argon2 bound "
                f"({bound['hash_ms']:.1f} ms/hash, {bound['bound_rps']:.0f}/s)")
    if "alone" in row:
        alone = row["alone"]
        return (f"p50 {row['p50_ms'] / alone['p50_ms']:.1f} x, p99 {row['p99_ms'] / alone['p99_ms']:.1f} x "
                f"a login alone ({alone['p50_ms']:.1f} / {alone['p99_ms']:.1f} ms); "
                f"{row['background_rps']:.0f} registrations/s beside it")
    scenario, store = label.split()[0], label.split()[-1]
    if scenario in COMPARED_WITH:
        other = COMPARED_WITH[scenario]
        rps = alone_rps.get((row.get("generator"), other, store))
        return f"{row['rps'] / rps:.2f} x {other}" if rps else ""
    before, after = row["baseline_rps"]
    mean = (before + after) / 2
    return f"{row['rps'] / mean:.2f} x baseline ({before:.0f}/s before, {after:.0f}/s after)"


print(f"{'scenario':<34}{'gen':>5}{'conns':>6}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}"
      f"{'RSS MB':>8}  ratio")
for row in rows:
    print(f"{row['label']:<34}{row.get('generator', ''):>5}{row['connections']:>6}{row['rps']:>9.0f}{row['p50_ms']:>8.2f}"
          f"{row['p99_ms']:>8.2f}{row['errors']:>7}{row['peak_rss_mb']:>8}  {reference(row)}")
