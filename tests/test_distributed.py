"""Data-parallel training (``ncflab.training.distributed``): two CPU processes joined by gloo,
as ``torchrun --nproc-per-node 2`` starts them.

Checked: how an epoch's minibatches are shared; that the ranks' weights stay identical and only
rank 0 validates; that a data-parallel step of two minibatches of B is the one-process step of
their 2B union (the same fit to float rounding); that a killed data-parallel fit resumes to the
uninterrupted one; and ``torchrun … ncflab train`` end to end (one run folder, said once)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_contract import block_problem, make
from torch import nn

from ncflab.models import FitOptions
from ncflab.training import distributed
from ncflab.training.distributed import share

WORLD = 2


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 7, 8])
def test_every_minibatch_is_trained_and_every_rank_takes_as_many_steps(count: int) -> None:
    batches = list(range(count))
    shares = [list(share(iter(batches), r, WORLD)) for r in range(WORLD)]
    assert len(shares[0]) == len(shares[1]) == -(-count // WORLD)
    assert sorted(set(shares[0] + shares[1])) == batches
    # Rank r takes the r-th of every 2 consecutive minibatches; a short last group is padded
    # with the epoch's first minibatch.
    assert shares[0] == batches[0::2]
    assert shares[1] == batches[1::2] + ([0] if count % 2 else [])


def test_one_process_keeps_every_minibatch_in_order() -> None:
    assert list(share(iter(range(5)), 0, 1)) == [0, 1, 2, 3, 4]


# ----------------------------------------------------------------- two processes, gloo
def _worker(rank: int, rendezvous: str, job: str, out: str) -> None:
    torch.set_num_threads(1)
    # A timeout: ranks that call different collectives fail the test instead of hanging it.
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank,
                            world_size=WORLD, timeout=timedelta(seconds=60))  # fmt: skip
    try:
        result = JOBS[job](rank, Path(out))
        torch.save(result, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _spawn(job: str, tmp_path: Path) -> list[dict]:
    """Run ``job`` on two gloo ranks; each rank's returned dict."""
    rendezvous = tmp_path / "rendezvous"
    mp.start_processes(_worker, args=(str(rendezvous), job, str(tmp_path)), nprocs=WORLD,
                       start_method="spawn")  # fmt: skip
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _validator(calls: list):
    def validate(model) -> dict[str, float]:
        calls.append(len(model.history_))
        return {"NDCG@10": [0.1, 0.3, 0.2][len(model.history_)]}  # best at epoch 2

    return validate


def _fit_models(rank: int, out: Path) -> dict:
    train = block_problem()[0]
    results = {}
    for name in ("bpr", "neumf", "jncf", "multvae", "jca"):
        calls: list = []
        model = make(name, epochs=3).fit(
            train, FitOptions(device="cpu", validate=_validator(calls), patience=5)
        )
        results[name] = {
            "state": model.state_arrays(),
            "history": [(r["epoch"], r["loss"], r["metrics"]) for r in model.history_],
            "best": model.best_epoch_,
            "validated": calls,
        }
    return results


def _bpr(batch: int, epochs: int = 2):
    return make("bpr", epochs=epochs, batch_size=batch, n_neg=1, lr=0.01)


def _big_step(rank: int, out: Path) -> dict:
    # 840 training pairs: 4 groups of 2 minibatches of 105, so no padding.
    train = block_problem()[0]
    assert len(train) == 840
    return _bpr(105).fit(train, FitOptions(device="cpu")).state_arrays()


class _Killed(Exception):
    pass


def _killed_and_resumed(rank: int, out: Path) -> dict:
    train = block_problem()[0]

    def options(folder: str, kill_at: int | None = None, resume: bool = False) -> FitOptions:
        def on_epoch(record: dict) -> None:
            if record["epoch"] == kill_at:
                raise _Killed

        return FitOptions(device="cpu", checkpoint_dir=out / folder, snapshot_seconds=0.0,
                          resume=resume, on_epoch=on_epoch)  # fmt: skip

    whole = _bpr(64, epochs=4).fit(train, options("whole"))
    try:
        _bpr(64, epochs=4).fit(train, options("cut", kill_at=3))
    except _Killed:
        pass
    dist.barrier()  # rank 0 has written the snapshot after epoch 2 before anyone reads it
    resumed = _bpr(64, epochs=4).fit(train, options("cut", resume=True))
    return {"whole": whole.state_arrays(), "resumed": resumed.state_arrays(),
            "losses": [[r["loss"] for r in m.history_] for m in (whole, resumed)]}  # fmt: skip


def _neumf_step(rank: int, out: Path) -> dict:
    # NeuMF: sparse-row embedding gradients gathered (however small the tables), its tower's
    # dense ones all-reduced.
    distributed.GATHER_ABOVE_BYTES = 0
    return (
        make("neumf", epochs=2, batch_size=105, n_neg=1)
        .fit(block_problem()[0], FitOptions(device="cpu"))
        .state_arrays()
    )


def _sparse_grad(rows: list[int], values: torch.Tensor, shape: tuple) -> torch.Tensor:
    return torch.sparse_coo_tensor(torch.tensor([rows]), values, shape)


def _gradients(rank: int, out: Path) -> dict:
    """``average_gradients`` on hand-made gradients: a table with duplicate rows on rank 0, a
    dense vector, a one-wide table that only rank 1's minibatch reached, an untouched one."""
    gen = torch.Generator().manual_seed(rank)
    table, vector, narrow, untouched = (nn.Parameter(torch.zeros(s))
                                        for s in [(10, 3), (5,), (6, 1), (4, 2)])  # fmt: skip
    distributed.GATHER_ABOVE_BYTES = 0
    rows = [[1, 1, 4], [4, 7]][rank]
    table.grad = _sparse_grad(rows, torch.randn(len(rows), 3, generator=gen), (10, 3))
    vector.grad = torch.randn(5, generator=gen)
    if rank == 1:
        narrow.grad = _sparse_grad([5, 0], torch.randn(2, 1, generator=gen), (6, 1))
    reached = torch.zeros(6, 1) if narrow.grad is None else narrow.grad.to_dense()
    given = {"table": table.grad.to_dense(), "vector": vector.grad.clone(), "narrow": reached}
    distributed.average_gradients([table, vector, narrow, untouched])
    return {"given": given, "sparse": [table.grad.is_sparse, narrow.grad.is_sparse],
            "mean": {"table": table.grad.to_dense(), "vector": vector.grad,
                     "narrow": narrow.grad.to_dense(), "untouched": untouched.grad}}  # fmt: skip


def _absent_on_one_rank(rank: int, out: Path) -> dict:
    """A dense parameter that only rank 1's minibatch reached, beside a small sparse table,
    under a threshold between the two ranks' counts of sparse-or-absent gradients: both ranks
    must still take the same way."""
    table, dense = nn.Parameter(torch.zeros(10, 3)), nn.Parameter(torch.zeros(100))
    distributed.GATHER_ABOVE_BYTES = 200  # table 120 bytes, table and dense 520
    rows = [[1, 2], [2, 9]][rank]
    table.grad = _sparse_grad(rows, torch.ones(2, 3) * (rank + 1), (10, 3))
    if rank == 1:
        dense.grad = torch.full((100,), 4.0)
    distributed.average_gradients([table, dense])
    return {"table": table.grad.to_dense(), "dense": dense.grad, "sparse": table.grad.is_sparse}


JOBS = {"fit": _fit_models, "big_step": _big_step, "resume": _killed_and_resumed,
        "neumf_step": _neumf_step, "gradients": _gradients,
        "absent_on_one_rank": _absent_on_one_rank}  # fmt: skip


def test_ranks_stay_identical_and_only_rank_0_validates(tmp_path) -> None:
    ranks = _spawn("fit", tmp_path)
    for name, zero in ranks[0].items():
        one = ranks[1][name]
        for key, value in zero["state"].items():
            assert torch.equal(value, one["state"][key]), (name, key)
        assert zero["history"] == one["history"] and zero["best"] == one["best"] == 2, name
        assert zero["validated"] == [0, 1, 2] and one["validated"] == [], name
        losses = [loss for _, loss, _ in zero["history"]]
        assert all(np.isfinite(losses)), name


def test_a_data_parallel_step_is_the_step_of_the_union_minibatch(tmp_path) -> None:
    ranks = _spawn("big_step", tmp_path)
    torch.set_num_threads(1)
    one_process = _bpr(210).fit(block_problem()[0], FitOptions(device="cpu")).state_arrays()
    for key, value in one_process.items():
        torch.testing.assert_close(ranks[0][key], value, rtol=1e-4, atol=1e-6)
    # …and not merely close to any fit: the data-parallel fit differs from batch 105 alone.
    alone = _bpr(105).fit(block_problem()[0], FitOptions(device="cpu")).state_arrays()
    assert not all(torch.allclose(ranks[0][k], v, atol=1e-3) for k, v in alone.items())


def test_gathered_row_gradients_are_the_mean_of_the_ranks(tmp_path) -> None:
    ranks = _spawn("gradients", tmp_path)
    for name in ("table", "vector", "narrow"):
        want = (ranks[0]["given"][name] + ranks[1]["given"][name]) / 2
        for r in ranks:
            torch.testing.assert_close(r["mean"][name], want, rtol=0, atol=1e-7)
    assert torch.equal(ranks[0]["mean"]["untouched"], torch.zeros(4, 2))
    assert ranks[0]["sparse"] == ranks[1]["sparse"] == [True, True]  # gathered, not densified


def test_ranks_agree_on_gathering_when_a_gradient_is_absent_on_one(tmp_path) -> None:
    ranks = _spawn("absent_on_one_rank", tmp_path)
    want = torch.zeros(10, 3)
    want[1], want[2], want[9] = 0.5, 1.5, 1.0  # (rank 0's 1s + rank 1's 2s) / 2
    for r in ranks:
        torch.testing.assert_close(r["table"], want)
        torch.testing.assert_close(r["dense"], torch.full((100,), 2.0))
    assert ranks[0]["sparse"] == ranks[1]["sparse"]


def test_a_data_parallel_neumf_step_is_the_step_of_the_union_minibatch(tmp_path) -> None:
    ranks = _spawn("neumf_step", tmp_path)
    for key, value in ranks[0].items():
        assert torch.equal(value, ranks[1][key]), key
    torch.set_num_threads(1)
    one_process = (
        make("neumf", epochs=2, batch_size=210, n_neg=1)
        .fit(block_problem()[0], FitOptions(device="cpu"))
        .state_arrays()
    )
    for key, value in one_process.items():
        torch.testing.assert_close(ranks[0][key], value, rtol=1e-4, atol=1e-6)


def test_a_killed_data_parallel_fit_resumes_to_the_uninterrupted_one(tmp_path) -> None:
    ranks = _spawn("resume", tmp_path)
    for r in ranks:
        for key, value in r["whole"].items():
            assert torch.equal(value, r["resumed"][key]), key
        assert r["losses"][0] == r["losses"][1]
    assert (tmp_path / "cut").is_dir()


# ----------------------------------------------------------------- torchrun, end to end
def test_torchrun_trains_one_run_and_says_it_once(tmp_path) -> None:
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(60), 8)
    items = np.concatenate([rng.choice(150, 8, replace=False) for _ in range(60)])
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("user,item,rating,timestamp\n" + "".join(
        f"{u},{i},1,{t}\n" for t, (u, i) in enumerate(zip(users, items, strict=True))
    ))  # fmt: skip
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        torchrun, "--standalone", "--nproc-per-node", "2", "-m", "ncflab", "train",
        "-m", "bpr", "-d", str(ratings), "-p", "ncf", "--set", "params.epochs=2",
        "--set", "train.threads=1", "-o", str(out),
    ]  # fmt: skip
    # A session of its own: on a timeout the ranks are killed with torchrun, not left behind.
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    done = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((out / "metrics.json").read_text())
    assert record["processes"] == 2
    assert np.isfinite(record["test"]["HR@10"])
    assert done.stdout.count("run written to") == 1
    assert done.stderr.count("epoch 1 ") == 1  # rank 1 logs only warnings
