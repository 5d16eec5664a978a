"""J-NCF's first DF layer (Eq. 4, W¹v + b¹ on a rating row v_u or column v_i): forward and
backward, weight gradient included, by every way we know to compute it, on real minibatches.

    python benchmarks/bench_jncf_layer.py --data-dir /work/shared/data [--batches 256 4096]
        [--sides user item] [--steps 15] [--variants bag dense ...] [--threads 1] [--out F]
    python benchmarks/bench_jncf_layer.py --data-dir /work/shared/data --epoch [--batches ...]

Minibatches are sampled as ``JNCF.fit`` samples them (``bpr_triplets`` with the model's
``n_neg``, epoch order, ``batch_size`` positives each), on the ``jncf`` split's training data;
each step's layer input is the minibatch's unique users (side "user": rows of R, weight
n_items x d) or unique items (side "item": columns of R, weight n_users x d), d = J-NCF's first
DF width. Every variant runs on the same ``--steps`` minibatches, interleaved (variant order
rotates per step, after one untimed warm-up step each), and its median over the steps is
reported, with its largest difference from variant "bag" (the layer before these measurements)
in the outputs and in the weight gradient over all steps. Timed: from the rows' ids to the
weight gradient (bag building, forward, backward), given a fixed random upstream gradient.

Variants:
  bag            SparseLinear's embedding bag with the transposed-bag backward (``_BagProduct``),
                 one pass over the whole table, transposed selection by a mask (before).
  embedding_bag  ``F.embedding_bag`` and PyTorch's own backward.
  sparse_mm      CSR ``torch.sparse.mm`` (the selected rows) @ W, autograd's backward.
  sparse_mm_t    the same forward, backward by ``torch.sparse.mm`` of the transposed selection.
  dense          the rows of a dense copy of R (``index_select``) @ W, autograd's backward.
  scipy          SciPy CSR rows @ W, backward Sᵀ @ G (SciPy's own C++ loops).
  compiled       ``torch.compile`` of the bag forward (inductor), PyTorch's backward.
  bag_chunked    "bag", the tables read 64 columns at a time (``sparse_input.CACHE_BYTES``).
  bag_sorted     "bag", small selections transposed by a sort (``sparse_input.SORT_BELOW``).
  selected       "bag_chunked" and "bag_sorted" together: the selected rows' bags.
  all_rows       every row's bag (no gather, stored transpose), then the selected rows.
  current        what ``RatingGraph.user_layer``/``item_layer`` do now (the rules combined).

``--epoch`` times whole training steps instead (J-NCF's ``train_logits``, its hybrid loss,
backward and the fused Adam step, on minibatches sampled and weighted as ``JNCF.fit`` does) for
a whole epoch (or ``--epoch-steps``), on two copies of the same initial model: one with the
layer as it was ("bag"), one as it is ("current"), step by step in alternating order, so both
see the same machine load. Reported: the sum of each one's step times, and whether the two
models are still bitwise equal at the end (with one thread they are; with two, PyTorch's
threaded ops already make two runs of the same code differ).
"""

from __future__ import annotations

import contextlib
import statistics
import time
import warnings

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from harness import emit, load_split, parser, setup

from ncflab.data.sampling import NegativeSampler, bpr_triplets
from ncflab.models import sparse_input
from ncflab.models.jncf import JNCF, _row_max
from ncflab.models.sparse_input import RatingGraph, SparseLinear
from ncflab.training.losses import hybrid

VARIANTS = (
    "bag", "embedding_bag", "sparse_mm", "sparse_mm_t", "dense", "scipy", "compiled",
    "bag_chunked", "bag_sorted", "selected", "all_rows", "current",
)  # fmt: skip
# The rules of sparse_input turned off: the layer as it was before them ("bag").
BEFORE = {"CACHE_BYTES": float("inf"), "SORT_BELOW": 0.0, "ALL_ROWS": float("inf")}


@contextlib.contextmanager
def rules(**values: float):
    """``sparse_input``'s module constants set to ``values`` for the duration."""
    old = {k: getattr(sparse_input, k) for k in values}
    for k, v in values.items():
        setattr(sparse_input, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(sparse_input, k, v)


class Side:
    """One side of the layer: the matrix whose rows are inputs (R or Rᵀ) in every form a
    variant needs, and J-NCF's initial first layer for it."""

    def __init__(self, name: str, graph: RatingGraph, csr: sp.csr_matrix, layer: SparseLinear):
        self.name, self.graph, self.csr, self.layer = name, graph, csr, layer
        self.dense = torch.from_numpy(csr.toarray())
        self.compiled = torch.compile(F.embedding_bag, dynamic=True)

    def bag(self, rows: torch.Tensor) -> sparse_input.Bag:
        return self.graph.user_bag(rows) if self.name == "user" else self.graph.item_bag(rows)

    def layer_rows(self, rows: torch.Tensor) -> torch.Tensor:
        g = self.graph
        return (
            g.user_layer(self.layer, rows)
            if self.name == "user"
            else g.item_layer(self.layer, rows)
        )

    def csr_tensor(self, index, offsets, values, n_rows: int, n_cols: int) -> torch.Tensor:
        crow = torch.cat([offsets, torch.tensor([len(index)])])
        return torch.sparse_csr_tensor(
            crow, index, values, size=(n_rows, n_cols), check_invariants=False
        )

    def run(self, variant: str, rows: torch.Tensor, grad: torch.Tensor):
        """(output, weight gradient) of ``variant`` on ``rows`` with upstream ``grad``."""
        w, b = self.layer.weight, self.layer.bias
        if variant in ("bag", "bag_chunked", "bag_sorted", "selected", "all_rows", "current"):
            own = {
                "bag": BEFORE,
                "bag_chunked": BEFORE | {"CACHE_BYTES": sparse_input.CACHE_BYTES},
                "bag_sorted": BEFORE | {"SORT_BELOW": sparse_input.SORT_BELOW},
                "selected": {"ALL_ROWS": float("inf")},
                "all_rows": BEFORE | {"ALL_ROWS": 0.0, "CACHE_BYTES": sparse_input.CACHE_BYTES},
                "current": {},
            }[variant]
            with rules(**own):
                out = self.layer_rows(rows)
                return out, torch.autograd.grad(out, w, grad)[0]
        if variant == "scipy":
            out = _ScipyProduct.apply(w, self.csr[rows.numpy()]) + b
            return out, torch.autograd.grad(out, w, grad)[0]
        if variant == "dense":
            out = self.dense.index_select(0, rows) @ w + b
            return out, torch.autograd.grad(out, w, grad)[0]
        bag = self.bag(rows)
        if variant in ("embedding_bag", "compiled"):
            fn = F.embedding_bag if variant == "embedding_bag" else self.compiled
            out = fn(bag.index, w, bag.offsets, mode="sum", per_sample_weights=bag.values) + b
            return out, torch.autograd.grad(out, w, grad)[0]
        csr = self.csr_tensor(bag.index, bag.offsets, bag.values, len(rows), w.shape[0])
        if variant == "sparse_mm":
            out = torch.sparse.mm(csr, w) + b
        else:
            out = _SparseMM.apply(w, csr, bag.transpose, len(rows), self) + b
        return out, torch.autograd.grad(out, w, grad)[0]


class _SparseMM(torch.autograd.Function):
    """CSR V @ W, with Vᵀ G as a CSR product over the transposed selection."""

    @staticmethod
    def forward(ctx, weight, csr, transpose, n_rows, side):  # noqa: ANN001, ANN205
        ctx.transpose, ctx.n_rows, ctx.n_in, ctx.side = transpose, n_rows, weight.shape[0], side
        return torch.sparse.mm(csr, weight)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        t = ctx.side.csr_tensor(*ctx.transpose(), ctx.n_in, ctx.n_rows)
        return torch.sparse.mm(t, grad.contiguous()), None, None, None, None


class _ScipyProduct(torch.autograd.Function):
    """SciPy CSR S @ W; weight gradient Sᵀ @ G."""

    @staticmethod
    def forward(ctx, weight, rows):  # noqa: ANN001, ANN205
        ctx.rows = rows
        return torch.from_numpy(np.asarray(rows @ weight.detach().numpy()))

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        return torch.from_numpy(np.asarray(ctx.rows.T @ grad.numpy())), None


def minibatches(train, model: JNCF, batch: int, steps: int, seed: int):
    """The first ``steps`` (unique users, unique items) of an epoch sampled as JNCF.fit does."""
    ratings = model._input_matrix(train)
    users, pos, neg = bpr_triplets(
        NegativeSampler.from_csr(ratings), np.random.default_rng(seed), model.n_neg
    )
    for s in range(0, min(steps, len(users) // batch) * batch, batch):
        items = np.concatenate([pos[s : s + batch, None], neg[s : s + batch]], 1)
        yield (
            torch.unique(torch.from_numpy(users[s : s + batch])),
            torch.unique(torch.from_numpy(items)),
        )


def time_epoch(args, train, batch: int) -> None:
    """``--epoch``: whole steps, the layer before ("bag") and now ("current"), interleaved."""
    models, opts = [], []
    for _ in range(2):
        model = JNCF(batch_size=batch, seed=args.seed)
        ratings = model._input_matrix(train)
        model.n_users_, model.n_items_ = train.n_users, train.n_items
        model.indptr_, model.indices_ = ratings.indptr.astype(np.int64), ratings.indices
        model.data_ = ratings.data
        model.build(train.n_users, train.n_items)
        models.append(model)
        opts.append(torch.optim.Adam(model.module_.parameters(), lr=model.lr, fused=True))
    graph = models[0]._graph(torch.device("cpu"))
    users, pos, neg = bpr_triplets(
        NegativeSampler.from_csr(ratings), np.random.default_rng(args.seed), model.n_neg
    )
    # Targets as JNCF.fit makes them: y_ui / max(R_u) (the cost does not depend on them).
    keys = np.repeat(np.arange(train.n_users), np.diff(ratings.indptr)) * train.n_items
    value = ratings.data[np.searchsorted(keys + ratings.indices, users * train.n_items + pos)]
    target = torch.from_numpy(value / _row_max(ratings)[users])
    users, pos, neg = (torch.from_numpy(a) for a in (users, pos, neg))
    alpha = {"hybrid": model.alpha, "point": 0.0, "pair": 1.0}[model.loss]
    n_steps = -(-len(users) // batch)
    n_steps = min(n_steps, args.epoch_steps or n_steps)
    labels = ("bag", "current")
    seconds = [0.0, 0.0]
    for step in range(n_steps):
        b = slice(step * batch, (step + 1) * batch)
        items = torch.cat([pos[b, None], neg[b]], 1)
        for k in (0, 1) if step % 2 == 0 else (1, 0):
            m, opt = models[k].module_, opts[k]
            with rules(**(BEFORE if k == 0 else {})):
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                logits = m.train_logits(graph, users[b], items)
                loss = hybrid(logits[:, 0], logits[:, 1:], target[b], pair=model.pair,
                              alpha=alpha, logits=True)  # fmt: skip
                loss.backward()
                opt.step()
                seconds[k] += time.perf_counter() - t0
    same = all(
        torch.equal(a, b)
        for a, b in zip(
            models[0].module_.state_dict().values(),
            models[1].module_.state_dict().values(),
            strict=True,
        )
    )
    for k, label in enumerate(labels):
        emit(
            args, model="jncf-epoch-steps", dataset=args.dataset, batch=batch,
            seconds=seconds[k], runs=1, variant=label, steps=n_steps,
            ms_per_step=round(seconds[k] / n_steps * 1e3, 2), bitwise_equal_models=same,
        )  # fmt: skip


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--dataset", default="ml-1m")
    ap.add_argument("--batches", nargs="+", type=int, default=[256, 4096])
    ap.add_argument("--sides", nargs="+", default=["user", "item"], choices=["user", "item"])
    ap.add_argument("--steps", type=int, default=15, help="minibatches timed per variant")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epoch", action="store_true", help="time whole steps of an epoch instead")
    ap.add_argument("--epoch-steps", type=int, default=0, help="with --epoch: 0 = the epoch")
    args = ap.parse_args()
    setup(args)
    warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
    train = load_split(args.dataset, "jncf", args.data_dir, seed=args.seed).train
    if args.epoch:
        for batch in args.batches:
            time_epoch(args, train, batch)
        return
    model = JNCF(seed=args.seed)
    ratings = model._input_matrix(train)
    model.build(train.n_users, train.n_items)
    graph = RatingGraph.from_csr(
        ratings.indptr, ratings.indices, ratings.data, train.n_items, torch.device("cpu")
    )
    sides = {
        "user": Side("user", graph, ratings, model.module_.user_in),
        "item": Side("item", graph, ratings.T.tocsr(), model.module_.item_in),
    }
    variants = ["bag"] + [v for v in args.variants if v != "bag"]
    gen = torch.Generator().manual_seed(args.seed)
    for name in args.sides:
        side = sides[name]
        for batch in args.batches:
            times: dict[str, list[float]] = {v: [] for v in variants}
            diff = {v: [0.0, 0.0] for v in variants}
            scale = [0.0, 0.0]
            shape = []
            for step, (users, items) in enumerate(
                minibatches(train, model, batch, args.steps + 1, args.seed)
            ):
                rows = users if name == "user" else items
                grad = torch.randn(len(rows), side.layer.weight.shape[1], generator=gen)
                indptr = side.csr.indptr
                shape.append((len(rows), int((indptr[rows + 1] - indptr[rows]).sum())))
                order = variants[step % len(variants) :] + variants[: step % len(variants)]
                results = {}
                for v in order:
                    t0 = time.perf_counter()
                    results[v] = [t.detach() for t in side.run(v, rows, grad)]
                    if step > 0:  # the first step warms up (and compiles)
                        times[v].append(time.perf_counter() - t0)
                ref_out, ref_grad = results["bag"]
                scale = [max(scale[0], float(ref_out.abs().max())),
                         max(scale[1], float(ref_grad.abs().max()))]  # fmt: skip
                for v, (out, g) in results.items():
                    diff[v][0] = max(diff[v][0], float((out - ref_out).abs().max()))
                    diff[v][1] = max(diff[v][1], float((g - ref_grad).abs().max()))
            n_rows, nnz = (int(statistics.median(c)) for c in zip(*shape, strict=True))
            for v in variants:
                seconds = statistics.median(times[v])
                emit(
                    args, model="jncf-first-layer", dataset=args.dataset, batch=batch,
                    seconds=seconds, runs=len(times[v]), side=name, variant=v,
                    ms=round(seconds * 1e3, 2), d=side.layer.weight.shape[1],
                    weight_rows=side.layer.weight.shape[0], rows=n_rows, nnz=nnz,
                    nnz_share=round(nnz / side.csr.nnz, 3), max_abs_diff_out=diff[v][0],
                    max_abs_diff_grad=diff[v][1], max_abs_out=scale[0], max_abs_grad=scale[1],
                )  # fmt: skip


if __name__ == "__main__":
    main()
