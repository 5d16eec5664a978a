"""Seconds per training epoch at small batches, per optimizer / implementation variant,
interleaved: NeuMF in RecBole's shape, BPR and Mult-VAE on ML-1M (``ncf`` split, seed 0).

    python benchmarks/bench_step.py [--models neumf bpr bpr-reg0 multvae] [--repeat 3] [--epochs 2]
        [--batch 256] [--multvae-batch 500 256] [--threads 1] [--out FILE]

One measurement is a fresh fit of ``--epochs`` epochs (no validation); its figure is the last
epoch's wall seconds (``history_``), whose samples the loop drew in the background during the
epoch before, so it is the cost of the steps; the first epoch, which also samples, is in
``first_epoch_s``. Every variant of a model runs once per round, ``--repeat`` rounds, and
``seconds`` is the median over rounds (``times`` all of them; ``cpu_s`` the process CPU seconds
of the same epochs, less sensitive to a shared machine). Whole epochs, not extrapolated steps.

Models and variants (1 negative per positive for NeuMF and BPR):

- ``neumf``: factors 64 (GMF embeddings 64), ``layers`` [128, 128, 64] (MLP embeddings 64, hidden
  128 and 64): RecBole's NeuMF with mf_embedding 64, mlp_embedding 64, mlp_hidden [128, 64]
  (RecBole's dropout 0.1 has no counterpart: the paper's NeuMF has none).
- ``bpr``: 64 factors (the default). For both: ``adam-dense`` is torch's fused Adam on the
  dense embedding gradients (ncflab before ``RowAdam``); ``adam`` the default, ``RowAdam`` with
  sparse row gradients, the same numbers; ``lazy_adam`` the option that updates touched rows
  only (another algorithm).
- ``bpr-reg0``: BPR at reg = 0 (RecBole's BPR has no L2), ``penalty-built`` the objective with
  its zero penalty built and back-propagated (before), ``no-penalty`` the default now (the
  same numbers).
- ``multvae``: defaults, at each ``--multvae-batch`` (users per step; 500 is the paper's).
  ``full-bag``: the drop-out input with its dropped (zero-weight) entries and PyTorch's
  embedding-bag backward (before); ``kept-bag``: the default, dropped entries left out and the
  weight gradient as a transposed bag (same numbers up to float summation order).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from harness import emit, load_split, parser, setup
from torch import nn

import ncflab.models.bpr as bpr_module
import ncflab.models.multvae as multvae_module
import ncflab.models.ncf as ncf_module
from ncflab.models import FitOptions
from ncflab.models.bpr import BPR
from ncflab.models.multvae import MultVAE
from ncflab.models.ncf import NeuMF
from ncflab.training.layers import lookup

ADAMS = ("adam-dense", "adam", "lazy_adam")


@contextmanager
def dense_adam() -> Iterator[None]:
    """NCF and BPR with torch's fused Adam on dense gradients, as before ``RowAdam``."""

    def adam(module: nn.Module, lr: float, lazy: bool = False) -> torch.optim.Optimizer:
        return torch.optim.Adam(module.parameters(), lr=lr, fused=True)

    saved = ncf_module.row_adam, bpr_module.row_adam
    ncf_module.row_adam = bpr_module.row_adam = adam
    try:
        yield
    finally:
        ncf_module.row_adam, bpr_module.row_adam = saved


@contextmanager
def full_bag() -> Iterator[None]:
    """Mult-VAE's first layer on the whole drop-out bag, PyTorch's backward (as before)."""
    saved = multvae_module.kept_bag
    multvae_module.kept_bag = lambda bag, keep, row, n_rows, n_items: bag
    try:
        yield
    finally:
        multvae_module.kept_bag = saved


@contextmanager
def penalty_built() -> Iterator[None]:
    """BPR's loss with its L2 penalty built whatever reg is (as before reg = 0 skipped it)."""
    saved = bpr_module.BPRModule.loss

    def loss(self, users, pos, neg, reg):  # noqa: ANN001, ANN202
        items = torch.cat([pos[:, None], neg], dim=1)
        w_u, h = lookup(self.user, users), lookup(self.item, items)
        x = (w_u[:, None, :] * h).sum(-1)
        sq = h.square().sum(-1)
        rank_loss = F.softplus(x[:, 1:] - x[:, :1]).mean()
        norms = w_u.square().sum(-1) + sq[:, 0] + sq[:, 1:].mean(-1)
        return rank_loss + 0.5 * reg * norms.mean()

    bpr_module.BPRModule.loss = loss
    try:
        yield
    finally:
        bpr_module.BPRModule.loss = saved


@contextmanager
def nothing() -> Iterator[None]:
    yield


def cases(args) -> dict[tuple[str, int], dict[str, tuple[Callable, Callable]]]:  # noqa: ANN001
    """(model, batch) → variant → (model factory, context that sets the variant up)."""
    epochs, batch = args.epochs, args.batch
    neumf = dict(factors=64, layers=[128, 128, 64], n_neg=1, batch_size=batch, epochs=epochs)
    bpr = dict(factors=64, n_neg=1, batch_size=batch, epochs=epochs)
    out: dict = {}
    for name, cls, params in (("neumf", NeuMF, neumf), ("bpr", BPR, bpr)):
        if name in args.models:
            out[name, batch] = {
                v: (
                    lambda cls=cls, params=params, v=v: cls(
                        **params, optimizer="adam" if v == "adam-dense" else v
                    ),
                    dense_adam if v == "adam-dense" else nothing,
                )
                for v in ADAMS
            }
    if "bpr-reg0" in args.models:
        make0 = lambda: BPR(**bpr, reg=0.0)  # noqa: E731
        out["bpr-reg0", batch] = {"penalty-built": (make0, penalty_built),
                                  "no-penalty": (make0, nothing)}  # fmt: skip
    if "multvae" in args.models:
        for b in args.multvae_batch:
            make = lambda b=b: MultVAE(batch_size=b, epochs=epochs)  # noqa: E731
            out["multvae", b] = {"full-bag": (make, full_bag), "kept-bag": (make, nothing)}
    return out


def measure(make: Callable, context: Callable, train) -> tuple[float, float, float]:  # noqa: ANN001
    """(last epoch s, its process CPU s, first epoch s) of one fresh fit."""
    cpu = [time.process_time()]
    options = FitOptions(device="cpu", on_epoch=lambda *_: cpu.append(time.process_time()))
    with context():
        model = make()
        model.fit(train, options)
    seconds = [h["seconds"] for h in model.history_]
    return seconds[-1], cpu[-1] - cpu[-2], seconds[0]


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--models", nargs="+", default=["neumf", "bpr", "multvae"],
                   choices=["neumf", "bpr", "bpr-reg0", "multvae"])  # fmt: skip
    p.add_argument("--epochs", type=int, default=2, help="epochs per fit; the last one is timed")
    p.add_argument("--batch", type=int, default=256, help="NeuMF and BPR instances per step")
    p.add_argument("--multvae-batch", type=int, nargs="+", default=[500, 256])
    args = p.parse_args()
    setup(args)
    split = load_split("ml-1m", "ncf", args.data_dir)
    train = split.train
    todo = cases(args)
    runs: dict = {key: {v: [] for v in variants} for key, variants in todo.items()}
    for _ in range(args.repeat):
        for key, variants in todo.items():
            for variant, (make, context) in variants.items():
                runs[key][variant].append(measure(make, context, train))
    for (name, batch), variants in runs.items():
        steps_of = len(train) * 2 if name != "multvae" else train.n_users
        for variant, rows in variants.items():
            last = [r[0] for r in rows]
            emit(
                args, model=name, dataset="ml-1m/ncf", batch=batch, variant=variant,
                seconds=statistics.median(last), runs=len(rows), samples=steps_of,
                times=[round(t, 3) for t in last],
                cpu_s=round(statistics.median(r[1] for r in rows), 3),
                first_epoch_s=round(statistics.median(r[2] for r in rows), 3),
                epochs=args.epochs,
            )  # fmt: skip


if __name__ == "__main__":
    main()
