"""Prints bench/run.sh's JSON lines as one table, each row's rate as a ratio to the baseline's."""

import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
bound = next(row for row in rows if "bound_rps" in row)
results = [row for row in rows if "label" in row]
baseline = next(row["rps"] for row in results if row["label"] == "baseline")
verify_alone = {row["label"].split()[-1]: row["rps"] for row in results if row["label"].startswith("verify ")}

print(f"argon2id m=19456 t=2 p=1: {bound['hash_ms']:.1f} ms per hash; "
      f"{bound['cores']} cores -> login bound {bound['bound_rps']:.0f}/s")
print(f"{'scenario':<28}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'RSS MB':>8}  ratio")
for row in results:
    label = row["label"]
    if label.startswith("obtain"):
        ratio = f"{row['rps'] / bound['bound_rps']:.2f} x argon2 bound"
    elif label.startswith("verify-under-obtain"):
        alone = verify_alone.get(label.split()[-1])
        ratio = f"{row['rps'] / alone:.2f} x verify alone" if alone else ""
    else:
        ratio = f"{row['rps'] / baseline:.2f} x baseline"
    print(f"{label:<28}{row['rps']:>10.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
          f"{row['errors']:>8}{row['peak_rss_mb']:>8}  {ratio}")
