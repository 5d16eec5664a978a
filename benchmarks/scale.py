"""Scale: one epoch and the sampled evaluation of J-NCF, NeuMF, BPR, iALS and JCA on synthetic
data of Amazon Electronics' size after J-NCF's filtering (1,221,341 users, 157,003 items,
4,486,501 ratings, power-law activity), each model one ``ncflab train`` in its own process.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/scale.py \
        --work /tmp/scale --out results/speed/scale.jsonl

The data is made once (``ncflab data synth --like amazon-electronics``) in WORK. Each model is
``ncflab train -m MODEL -p jncf -d FILE --set params.epochs=1 --set train.threads=N`` plus its
own settings (``SETTINGS``) and those of ``--set KEY=VALUE …``, run one after another, with
``NCFLAB_MEMORY_LIMIT`` = ``--limit-gb`` (ncflab refuses a fit it estimates over it) and a
watchdog that kills a child whose resident memory passes the limit or whose CPU time passes
``--timeout``. Targets: epoch + evaluation under 30 minutes and 16 GB. EASE is run too: it
refuses, and its message is the result.

One JSON line per model (``harness.emit``): ``seconds`` = ``total_s``, the whole command; the
split (``split_s``), ``fit_s`` (the epoch ``epoch_s``, the in-fit validation
``valid_in_fit_s``, and the rest: setup, checkpoint and snapshot), ``eval_s`` (the validation
and test evaluations ``train`` runs after the fit), ``save_s`` (the run folder, until exit),
``cpu_s`` (the child's CPU time: on a shared machine the wall times stretch, it does not
much), ``peak_mb`` (the child's max RSS), ``status`` (ok, refused, error, timeout, memory), the
error line, the 1-minute load average before and after, and ``code``, the commit measured
(others commit to the checkout during a long run). ``--env KEY=VALUE`` sets a variable in the
children (a diagnosis, e.g. glibc's ``MALLOC_MMAP_THRESHOLD_``; recorded as ``env``). ncflab
reports every 100th step where its stderr is a terminal, so the child's stderr is a pty:
``s_per_step`` and ``cpu_s_per_step`` are read between the first and the last report.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from unittest import mock

import harness  # benchmarks/ is on sys.path when the script is run
from harness import emit, parser, setup

# Beyond ``params.epochs=1``. J-NCF: its default batch of 256 took ~1.5 s a step here (7,984
# steps, over 3 h), a cost per step, not per example (the item-side weight gradient and Adam
# over all 1.2 M users' rows), so a batch of 4,096 (499 steps) is the one change.
# JCA: blocks of 40,000 users x 40,000 items (124 steps) instead of the paper's 1,500 x 1,500
# (85,575 steps). A step's cost here is exact Adam and the L2 term over all 440 M weights (~7 s),
# not the block (decoded at its sampled pairs only: a 40,000 x 40,000 block holds ~16 k
# positives), so the paper's blocks would take about a week an epoch.
SETTINGS: dict[str, list[str]] = {
    "jncf": ["params.batch_size=4096"],
    "jca": ["params.block_users=40000", "params.block_items=40000"],
}
MODELS = ["jncf", "neumf", "bpr", "ials", "ease", "jca"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]")
STEP = re.compile(r"epoch (\d+), step (\d+)")
NCFLAB = [sys.executable, "-m", "ncflab"]  # this interpreter's: no activated venv needed


def make_data(work: Path) -> Path:
    """The synthetic ratings file in ``work``, made unless it is there (the draw is seeded)."""
    path = work / "electronics.parquet"
    if not path.is_file():
        cmd = [*NCFLAB, "data", "synth", "--like", "amazon-electronics", "-o", str(path)]
        subprocess.run(cmd, check=True)
    return path


class Child:
    """One ``ncflab train`` with its stderr on a pty (read for step reports and the error
    line), its RSS polled against ``limit_mb`` and its CPU time against ``timeout``: CPU, not
    wall, since other jobs share the machine's cores and stretch the wall time."""

    def __init__(self, cmd: list[str], env: dict[str, str], limit_mb: float, timeout: float):
        self.limit_mb, self.timeout, self.killed = limit_mb, timeout, ""
        self.steps: list[tuple[float, float, int, int]] = []  # (wall, CPU s, epoch, step)
        self.text = ""  # ANSI-free stderr tail
        master, slave = pty.openpty()
        self.start = time.time()
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        self.reader = threading.Thread(target=self._read, args=(master,), daemon=True)
        self.reader.start()

    def _read(self, fd: int) -> None:
        while True:
            try:
                chunk = os.read(fd, 65536).decode(errors="replace")
            except OSError:  # EIO: the child closed the pty
                break
            if not chunk:
                break
            self.text = (self.text + ANSI.sub("", chunk))[-20000:]
            for epoch, step in STEP.findall(self.text[-len(chunk) - 40 :]):
                if not self.steps or self.steps[-1][2:] != (int(epoch), int(step)):
                    wall, cpu = time.time() - self.start, usage(self.proc.pid)[1]
                    self.steps.append((wall, cpu, int(epoch), int(step)))
        os.close(fd)

    def wait(self) -> tuple[int, float, float, float]:
        """Exit status, wall seconds, CPU seconds and max RSS (MiB) of the child (``wait4``)."""
        pid = self.proc.pid
        while True:
            done, status, rusage = os.wait4(pid, os.WNOHANG)
            if done:
                break
            rss, cpu = usage(pid)
            if not self.killed and cpu > self.timeout:
                self.killed = f"timeout: killed after {cpu:.0f} CPU s"
            elif not self.killed and rss > self.limit_mb:
                self.killed = f"memory: killed at {rss:.0f} MiB RSS"
            if self.killed:
                os.kill(pid, 9)
            time.sleep(0.2)
        self.proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        self.reader.join(timeout=5)
        cpu = rusage.ru_utime + rusage.ru_stime
        return self.proc.returncode, time.time() - self.start, cpu, rusage.ru_maxrss / 1024


def usage(pid: int) -> tuple[float, float]:
    """Resident memory (MiB) and CPU seconds so far of a running ``pid`` (0 once it is gone)."""
    try:
        rss = Path(f"/proc/{pid}/statm").read_text().split()[1]
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0, 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime + stime, fields 14 and 15 of stat
    return int(rss) * os.sysconf("SC_PAGE_SIZE") / 2**20, ticks / os.sysconf("SC_CLK_TCK")


def log_times(run: Path) -> dict[str, float]:
    """Wall-clock times (epoch seconds) of the run log's landmarks, and the split's seconds."""
    out: dict[str, float] = {}
    path = run / "log.txt"
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if match := re.search(r" split \S+ ready in ([\d.]+)s", line):
            out["split_at"], out["split_s"] = stamp, float(match.group(1))
        elif " ncflab.experiments.run INFO valid: " in line:
            out["evaluated_at"] = stamp  # logged once both post-fit evaluations are done
    return out


def timings(run: Path, start: float, total: float) -> dict[str, float | None]:
    """split_s, fit_s (with epoch_s and valid_in_fit_s), eval_s and save_s of a finished run."""
    marks, metrics = log_times(run), {}
    if (run / "metrics.json").is_file():
        metrics = json.loads((run / "metrics.json").read_text())
    first = (metrics.get("history") or [{}])[0]
    fit = metrics.get("fit_seconds")
    out: dict[str, float | None] = {
        "split_s": marks.get("split_s"), "fit_s": fit, "epoch_s": first.get("seconds"),
        "valid_in_fit_s": first.get("eval_seconds"), "eval_s": None, "save_s": None,
    }  # fmt: skip
    if fit is not None and "evaluated_at" in marks and "split_at" in marks:
        out["eval_s"] = marks["evaluated_at"] - marks["split_at"] - fit
        out["save_s"] = start + total - marks["evaluated_at"]
    return {k: None if v is None else round(v, 1) for k, v in out.items()}


def code_version() -> str:
    """The commit of the checkout the child imports ncflab from, "+dirty" with edits in it
    (other people commit to it while a long run goes: each line says what it measured)."""
    import ncflab

    root = Path(ncflab.__file__).resolve().parents[2]
    git = ["git", "-C", str(root)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "src"],
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return head.stdout.strip() + ("+dirty" if dirty else "") if head.returncode == 0 else "?"


def error_line(text: str) -> str | None:
    """ncflab's one-line error message (``error: …`` or ``internal error: …``), if any."""
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines()]
    found = [ln for ln in lines if ln.startswith(("error:", "internal error:"))]
    return found[-1] if found else None


def run_model(model: str, data: Path, work: Path, args: argparse.Namespace) -> None:
    """Train ``model`` one epoch and evaluate it (``ncflab train``); emit its line."""
    from ncflab.experiments.run import build_model

    epochs = ["params.epochs=1"] if "epochs" in build_model(model, {}, 0).get_params() else []
    sets = [*epochs, f"train.threads={args.threads}", *SETTINGS.get(model, []), *args.set]
    run = work / "runs" / model
    cmd = [*NCFLAB, "train", "-m", model, "-p", "jncf", "-d", str(data), "-o", str(run), "--force"]
    cmd += [a for s in sets for a in ("--set", s)]
    limit_mb = args.limit_gb * 1024
    threads = str(args.threads)
    env = {**os.environ, "NCFLAB_MEMORY_LIMIT": f"{args.limit_gb}G", "TERM": "xterm",
           "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "OPENBLAS_NUM_THREADS": threads}  # fmt: skip
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    env |= extra_env
    load, version = os.getloadavg()[0], code_version()
    child = Child(cmd, env, limit_mb, args.timeout)
    code, total, cpu, peak = child.wait()
    message = error_line(child.text)
    if child.killed:
        status = child.killed.split(":")[0]
    elif code == 0:
        status = "ok"
    elif message and "needs about" in message:  # ncflab's memory estimate (ncflab.memory)
        status = "refused"
    else:
        status = "error"
    pairs = [s.removeprefix("params.").split("=", 1) for s in sets if s.startswith("params.")]
    hyper = build_model(model, {k: json.loads(v) for k, v in pairs}, 0)  # for its batch size
    steps = child.steps
    rate = cpu_rate = None
    if len(steps) > 1 and steps[-1][2] == steps[0][2]:  # within one epoch
        n = steps[-1][3] - steps[0][3]
        rate = round((steps[-1][0] - steps[0][0]) / n, 3)
        cpu_rate = round((steps[-1][1] - steps[0][1]) / n, 3)
    # harness.emit records its own process's max RSS; the measurement here is the child's.
    with mock.patch.object(harness, "peak_mb", lambda: peak):
        emit(
            args, model=model, dataset="synthetic amazon-electronics", seconds=total,
            batch=hyper.get_params().get("batch_size"), **timings(run, child.start, total),
            total_s=round(total, 1), cpu_s=round(cpu, 1), status=status, exit=code,
            killed=child.killed or None, message=message, settings=sets, env=extra_env,
            last_step=steps[-1][2:] if steps else None, s_per_step=rate,
            cpu_s_per_step=cpu_rate, limit_gb=args.limit_gb,
            load_1m=[round(load, 2), round(os.getloadavg()[0], 2)],
            child_command=" ".join(["ncflab", *cmd[3:]]), code=version,
        )  # fmt: skip
    if not args.keep_runs:
        shutil.rmtree(run, ignore_errors=True)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--models", nargs="+", default=MODELS, help="registry names, in order")
    p.add_argument("--work", type=Path, default=Path("/tmp/scale"), help="data and run folders")
    p.add_argument("--limit-gb", type=int, default=16, help="memory limit of each child, GiB")
    p.add_argument("--timeout", type=float, default=3000.0, help="CPU seconds per command")
    p.add_argument("--keep-runs", action="store_true", help="keep the run folders")
    p.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE", help="child environment")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="more settings for every model run (after its own SETTINGS)",
    )
    args = p.parse_args()
    setup(args)
    args.work.mkdir(parents=True, exist_ok=True)
    data = make_data(args.work)
    for model in args.models:  # one at a time: each is a machine's worth of memory
        run_model(model, data, args.work, args)


if __name__ == "__main__":
    main()
