"""Schema-driven fuzz run of ``ncflab serve``: Schemathesis generates requests from the service's
own OpenAPI schema (valid ones, and invalid ones from its coverage phase) against a real server
process, and checks every answer (no 5xx, status codes and bodies as the schema documents, valid
data accepted, invalid data refused).

    python benchmarks/serve_fuzz.py RUN [RUN ...] [--max-examples 300] [--st st]

Schemathesis is not a dependency of ncflab (it pins its own hypothesis); install it in its own
environment (``python -m venv st && st/bin/pip install schemathesis``) and pass its ``st``
with ``--st``. For each run: start ``ncflab serve RUN``, run ``st run`` with every check, and
print one JSON line: the number of requests by status code (from Schemathesis's NDJSON report),
the number of 5xx, and Schemathesis's failures by check. Exit status 1 when any answer was a 5xx.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from serve_load import served


def statuses(report: Path) -> collections.Counter:
    """Status codes of every response in a Schemathesis NDJSON report."""
    counts: collections.Counter = collections.Counter()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("status_code"), int) and "elapsed" in node:
                counts[node["status_code"]] += 1
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for line in report.read_text().splitlines():
        walk(json.loads(line))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--max-examples", type=int, default=300)
    parser.add_argument("--st", default="st", help="the schemathesis command")
    parser.add_argument("--data-dir", default=os.environ.get("NCFLAB_DATA_DIR"))
    parser.add_argument("--log-dir", default=".", help="where the servers' logs go")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    any_5xx = False
    for run in args.runs:
        with served(run, args) as base:
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [args.st, "run", f"{base}/openapi.json", "--checks", "all"]
                cmd += ["--max-examples", str(args.max_examples), "--workers", "1"]
                cmd += ["--report", "ndjson", "--report-dir", tmp]
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                (report,) = Path(tmp).glob("*.ndjson")
                counts = statuses(report)
            failures = dict(re.findall(r"❌ (ST\d+ [^:\n]+): (\d+)", done.stdout))
            n_5xx = sum(n for code, n in counts.items() if code >= 500)
            any_5xx |= n_5xx > 0
            row = {
                "run": str(run),
                "requests": sum(counts.values()),
                "by_status": {str(k): v for k, v in sorted(counts.items())},
                "5xx": n_5xx,
                "schemathesis_failures": {k: int(v) for k, v in failures.items()},
                "schemathesis_exit": done.returncode,
            }
            print(json.dumps(row), flush=True)
    sys.exit(1 if any_5xx else 0)


if __name__ == "__main__":
    main()
