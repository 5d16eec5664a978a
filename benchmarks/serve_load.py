"""Load test of ``ncflab serve`` on loopback: latency percentiles and throughput of a real server
process for a known user's top-K and for a new user's fold-in, at several concurrencies.

    python benchmarks/serve_load.py RUN [RUN ...] [--concurrency 1 16] [--requests 2000]
        [--k 10] [--threads 1] [--workers 1] [--data-dir DIR]

For each run folder: start ``ncflab serve RUN`` as a separate process on a free port, wait for
``/health``, then for each scenario and concurrency send ``--warmup`` requests (not counted)
and ``--requests`` timed ones from ``c`` concurrent connections of an asyncio client (httpx).

- ``known``: ``GET /users/{id}/recommendations?k=K`` for users drawn at random from the run's
  training users;
- ``fold-in``: ``POST /recommendations`` with the training items (and ratings) of a training
  user drawn at random, i.e. a realistic new-user history (ML-1M: median 96 items).

Each line printed is one JSON object: run, model, scenario, concurrency, requests, failures
(any status but 200, or a connection error), p50/p90/p99/max latency in ms, requests per second
(timed requests / wall time), and the server's threads and workers. The client runs on the same
machine as the server and takes some of its CPU, so the figures are a lower bound on what the
server alone would do. Exit status 1 when any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(run: Path, port: int, args: argparse.Namespace) -> subprocess.Popen:
    cmd = ["ncflab", "serve", str(run), "--port", str(port), "--threads", str(args.threads)]
    cmd += ["--workers", str(args.workers)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    log = open(Path(args.log_dir) / f"serve-{run.name}.log", "w")  # noqa: SIM115 - kept open
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


@contextlib.contextmanager
def served(run: Path, args: argparse.Namespace) -> Iterator[str]:
    """A ``ncflab serve RUN`` process on a free port, ready; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(run, port, args)
    try:
        wait_ready(base, server)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_ready(base: str, server: subprocess.Popen, timeout: float = 600.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode} before ready")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server at {base} was not ready after {timeout:.0f} s")


def histories(run: Path, data_dir: str | None) -> tuple[list, list[tuple[list, list]]]:
    """The run's training user ids, and each training user's (item ids, ratings or 1s)."""
    from ncflab.experiments.run import load_run

    _, split, _ = load_run(run, data_dir=data_dir)
    train = split.train
    csr = train.csr("rating" if train.ratings is not None else "binary")
    items = train.item_ids
    out = []
    for u in range(train.n_users):
        span = slice(csr.indptr[u], csr.indptr[u + 1])
        out.append((items[csr.indices[span]].tolist(), csr.data[span].astype(float).tolist()))
    return train.user_ids.tolist(), out


async def drive(make, n: int, concurrency: int, client: httpx.AsyncClient) -> tuple:
    """Send ``n`` requests built by ``make(i)`` over ``concurrency`` workers; returns the
    latencies (s), the failures and the wall time."""
    latencies = np.zeros(n)
    failures: list[str] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            method, url, body = make(i)
            t0 = time.perf_counter()
            try:
                resp = await client.request(method, url, json=body)
                ok = resp.status_code == 200
                detail = f"{resp.status_code} {resp.text[:200]}"
            except httpx.HTTPError as err:
                ok, detail = False, repr(err)
            latencies[i] = time.perf_counter() - t0
            if not ok:
                failures.append(detail)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, failures, time.perf_counter() - t0


def requests_of(scenario: str, users: list, hist: list, k: int, seed: int):
    rng = np.random.default_rng(seed)

    def make(i: int) -> tuple[str, str, dict | None]:
        u = int(rng.integers(len(users)))
        if scenario == "known":
            return "GET", f"/users/{users[u]}/recommendations?k={k}", None
        items, ratings = hist[u]
        return "POST", "/recommendations", {"items": items, "ratings": ratings, "k": k}

    return make


async def measure(base: str, scenario: str, c: int, users, hist, args) -> dict:
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        await drive(requests_of(scenario, users, hist, args.k, 1), args.warmup, c, client)
        lat, failures, wall = await drive(
            requests_of(scenario, users, hist, args.k, 2), args.requests, c, client
        )
    ms = lat * 1000
    return {
        "scenario": scenario,
        "concurrency": c,
        "requests": args.requests,
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p90_ms": round(float(np.percentile(ms, 90)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "requests_per_s": round(args.requests / wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="server torch threads")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--scenarios", nargs="+", default=["known", "fold-in"])
    parser.add_argument("--data-dir", default=os.environ.get("NCFLAB_DATA_DIR"))
    parser.add_argument("--log-dir", default=".", help="where the servers' logs go")
    args = parser.parse_args()

    any_failed = False
    for run in args.runs:
        users, hist = histories(run, args.data_dir)
        with served(run, args) as base:
            model = httpx.get(f"{base}/model", timeout=10).json()["name"]
            for scenario in args.scenarios:
                for c in args.concurrency:
                    row = asyncio.run(measure(base, scenario, c, users, hist, args))
                    any_failed |= row["failures"] > 0
                    head = {"run": str(run), "model": model, "threads": args.threads}
                    print(json.dumps({**head, "workers": args.workers, **row}), flush=True)
    sys.exit(1 if any_failed else 0)


if __name__ == "__main__":
    main()
