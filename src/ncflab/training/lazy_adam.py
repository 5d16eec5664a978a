"""Adam for models whose embedding tables receive sparse row gradients (NCF, BPR).

Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, Algorithm 1: per
parameter θ with gradient g_t at step t,

    m_t = β₁ m_{t−1} + (1 − β₁) g_t,      v_t = β₂ v_{t−1} + (1 − β₂) g_t²,
    θ_t = θ_{t−1} − α · (m_t / (1 − β₁ᵗ)) / (√(v_t / (1 − β₂ᵗ)) + ε).

A minibatch of 256 touches a few hundred of an embedding table's thousands of rows, yet Adam's
update is dense: every row's m and v decay and every row moves, since a row's m stays ≠ 0 once
it has had a gradient. On a CPU at that batch size the step is memory traffic over all rows,
plus the zeroed dense gradient autograd allocates for each table (``index_select``'s backward).
``RowAdam`` takes the tables' gradients as sparse rows instead (``sparse_rows``:
``nn.Embedding.sparse``, honoured by ``layers.lookup``) and either

- ``lazy=False`` (exact): scatters them into a dense gradient kept zero between steps (only the
  touched rows are written and cleared again) and runs the fused Adam kernel over all rows, so
  every parameter is what ``torch.optim.Adam(fused=True)`` gives, without the per-step
  allocation and zero-fill of a full gradient: bit for bit when a step looks a table up once
  (NCF, BPR: the same ``index_add_`` as the dense backward), to float rounding otherwise (the
  lookups' rows are summed in one pass); or
- ``lazy=True`` (LazyAdam, as TensorFlow's ``LazyAdamOptimizer``): sums a table's duplicate
  rows and applies Algorithm 1 to the touched rows only. Untouched rows keep θ, m and v: their
  moments do not decay and they do not move on momentum. The bias correction uses the step
  count of the whole table (steps taken so far), as the dense update does. This is another
  algorithm; dense parameters (an MLP tower) get plain Adam.

The state (``step``, ``exp_avg``, ``exp_avg_sq`` per parameter) is ``torch.optim.Adam``'s, so
snapshots and ``state_dict`` read the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

__all__ = ["RowAdam", "row_adam", "sparse_rows"]


def sparse_rows(module: nn.Module, sparse: bool = True) -> None:
    """Make every ``nn.Embedding`` of ``module`` give its weight a sparse row gradient (the rows
    a minibatch looked up) when ``sparse``, a dense one otherwise; ``layers.lookup`` and
    ``nn.Embedding.forward`` both read the flag. Values and scores do not change."""
    for m in module.modules():
        if isinstance(m, nn.Embedding):
            m.sparse = sparse


def row_adam(module: nn.Module, lr: float, lazy: bool = False) -> RowAdam:
    """A ``RowAdam`` over ``module``'s parameters, its embeddings switched to sparse row
    gradients (``sparse_rows``): the optimizer of the embedding models' "adam" (exact) and
    "lazy_adam" options."""
    sparse_rows(module)
    return RowAdam(module.parameters(), lr=lr, lazy=lazy)


class RowAdam(torch.optim.Adam):
    """Adam (fused kernel) that also takes sparse row gradients; ``lazy`` picks the exact dense
    update or LazyAdam's row update (module docstring). Weight decay, when set, is the coupled
    L2 of ``torch.optim.Adam``; with ``lazy`` only touched rows are decayed."""

    def __init__(
        self,
        params: Iterable[nn.Parameter] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        lazy: bool = False,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         fused=True)  # fmt: skip
        self.lazy = bool(lazy)
        # Exact mode: one dense gradient per sparse-gradient parameter, zero outside the rows
        # being applied (not state: it is zero between steps).
        self._dense: dict[nn.Parameter, torch.Tensor] = {}

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One Adam step over every parameter with a gradient (dense or sparse rows)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict) -> None:
        if group["amsgrad"] or group["maximize"] or group["decoupled_weight_decay"]:
            raise ValueError("RowAdam supports plain Adam only (no amsgrad, maximize, AdamW)")
        lists: dict[tuple, tuple[list, list, list, list, list]] = {}
        clear: list[tuple[torch.Tensor, torch.Tensor]] = []  # exact: (dense gradient, rows)
        back: list[tuple[torch.Tensor, ...]] = []  # lazy: (θ, m, v, rows, θ_r, m_r, v_r)
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            state = self._state(p)
            m, v = state["exp_avg"], state["exp_avg_sq"]
            if g.is_sparse and self.lazy:
                g = g.coalesce()  # one row per touched row, duplicates summed
                rows, g = g.indices()[0], g.values()
                tensors = [t.index_select(0, rows) for t in (p, m, v)]
                back.append((p, m, v, rows, *tensors))
                p, m, v = tensors
            elif g.is_sparse:
                rows = g._indices()[0]
                dense = self._dense.get(p)
                if dense is None:
                    dense = self._dense[p] = torch.zeros_like(p)
                # The same index_add_, in the same order, as index_select's dense backward.
                g = dense.index_add_(0, rows, g._values())
                clear.append((dense, rows))
            same_kind = lists.setdefault((p.device, p.dtype), ([], [], [], [], []))
            for out, t in zip(same_kind, (p, g, m, v, state["step"]), strict=True):
                out.append(t)
        beta1, beta2 = group["betas"]
        for params, grads, exp_avgs, exp_avg_sqs, steps in lists.values():
            # As torch.optim.adam._fused_adam: the step count first, then one kernel for all.
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                params, grads, exp_avgs, exp_avg_sqs, [], steps,
                lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                eps=group["eps"], amsgrad=False, maximize=False, grad_scale=None, found_inf=None,
            )  # fmt: skip
        for p, m, v, rows, p_rows, m_rows, v_rows in back:
            p.index_copy_(0, rows, p_rows)
            m.index_copy_(0, rows, m_rows)
            v.index_copy_(0, rows, v_rows)
        for dense, rows in clear:
            dense.index_fill_(0, rows, 0.0)

    def _state(self, p: nn.Parameter) -> dict:
        """``torch.optim.Adam``'s state of ``p`` (fused layout), created at its first step."""
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state
