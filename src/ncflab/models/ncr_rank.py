"""Ranking with a pairwise model (NCR §4.4): the predictive rule, win counts, Algorithm 1, and how
often the learned relation is intransitive.

Everything works on the pair logits ``L`` (B, C, C) of a candidate set, L[b, c, c'] = x̂(u_b, c, c')
(``PairNet.pair_logits``). The predictive rule says c ≻_u c' iff ŷ_ucc' > ŷ_uc'c, i.e.
L[c, c'] > L[c', c] (σ is monotone); equal logits decide nothing. The rule is transitive for
NBPR (Eq. 19–22) but not in general for DNCR/NeuPR, so a candidate set is ranked by a
consistent aggregate: the number of candidates each one beats (its Copeland win count).
"""

from __future__ import annotations

import torch

__all__ = ["algorithm1_topk", "beats", "intransitive_fraction", "win_counts"]


def beats(pair_logits: torch.Tensor) -> torch.Tensor:
    """(B, C, C) bool: [b, c, c'] is True when u_b prefers c to c' (ŷ_ucc' > ŷ_uc'c, §4.4).
    Strict: a tie is a win for neither, and c never beats itself."""
    _check(pair_logits)
    return pair_logits > pair_logits.transpose(1, 2)


def win_counts(pair_logits: torch.Tensor) -> torch.Tensor:
    """(B, C) float32 number of other candidates each candidate beats: a score whose order is
    consistent even when the pairwise relation has cycles. In sampled evaluation the held-out
    item gets no credit for a pairwise tie, and a tie in win counts counts against it
    (``ncflab.evaluation.metrics``), so a constant model ranks it last."""
    return beats(pair_logits).sum(-1, dtype=torch.int32).float()


def algorithm1_topk(pair_logits: torch.Tensor, k: int) -> torch.Tensor:
    """(B, min(k, C)) candidate positions chosen by NCR's Algorithm 1: K passes, each scanning
    the remaining candidates in list order and replacing the running ``max`` by j whenever
    ŷ(u, j, max) > ŷ(u, max, j) (line 7). Ties keep the earlier candidate.

    The scan is sequential by definition (its result depends on the order), so it loops over the
    K × C scan steps, each one vectorised over the B users: never a loop per user or per pair.
    """
    _check(pair_logits)
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    b, c, _ = pair_logits.shape
    rows = torch.arange(b, device=pair_logits.device)
    avail = torch.ones(b, c, dtype=torch.bool, device=pair_logits.device)
    picks = []
    for _ in range(min(k, c)):
        best = avail.int().argmax(1)  # line 4: the first remaining candidate
        for j in range(c):
            challenger = torch.full_like(best, j)
            better = pair_logits[rows, challenger, best] > pair_logits[rows, best, challenger]
            best = torch.where(avail[:, j] & better, challenger, best)
        picks.append(best)
        avail[rows, best] = False  # line 2: I⁻_u ← I⁻_u − P_uk
    return torch.stack(picks, 1)


def intransitive_fraction(
    pair_logits: torch.Tensor, samples: int | None = None, seed: int = 0
) -> torch.Tensor:
    """(B,) fraction of a user's candidate triangles {a, b, c} whose pairwise preferences are all
    decided and form a cycle (a ≻ b ≻ c ≻ a); NaN for a user with no decided triangle.

    ``samples=None`` counts every triangle exactly: with A = ``beats`` as 0/1 matrix, the
    directed 3-cycles are trace(A³)/3 and the decided triangles trace(D³)/6 with D = A + Aᵀ
    (two batched matrix products, cheaper than sampling for C ≈ 100). ``samples=T`` draws T
    triangles of distinct candidates per user (seeded), for very large candidate sets.
    """
    win = beats(pair_logits)
    if samples is None:
        a = win.float()
        d = a + a.transpose(1, 2)
        cycles = ((a @ a) * a.transpose(1, 2)).sum((1, 2)) / 3
        decided = ((d @ d) * d).sum((1, 2)) / 6
    else:
        x, y, z = _triangles(win.shape[0], win.shape[1], samples, seed, win.device)
        rows = torch.arange(win.shape[0], device=win.device)[:, None]
        xy, yz, zx = win[rows, x, y], win[rows, y, z], win[rows, z, x]
        yx, zy, xz = win[rows, y, x], win[rows, z, y], win[rows, x, z]
        cycles = ((xy & yz & zx) | (yx & zy & xz)).sum(1).float()
        decided = ((xy | yx) & (yz | zy) & (zx | xz)).sum(1).float()
    return torch.where(decided > 0, cycles / decided.clamp(min=1), torch.nan)


def _triangles(
    b: int, c: int, t: int, seed: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three (b, t) index tensors of distinct candidates, uniform over unordered triples: x, then
    y from the c − 1 others, then z from the c − 2 left (each shifted past the taken ones)."""
    if c < 3 or t < 1:
        raise ValueError(f"need at least 3 candidates and 1 sample, got C={c}, samples={t}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, c, (b, t), generator=gen)
    y = torch.randint(0, c - 1, (b, t), generator=gen)
    y = y + (y >= x)
    z = torch.randint(0, c - 2, (b, t), generator=gen)
    lo, hi = torch.minimum(x, y), torch.maximum(x, y)
    z = z + (z >= lo)
    z = z + (z >= hi)
    return x.to(device), y.to(device), z.to(device)


def _check(pair_logits: torch.Tensor) -> None:
    if pair_logits.dim() != 3 or pair_logits.shape[1] != pair_logits.shape[2]:
        raise ValueError(f"pair logits must be (B, C, C), got shape {tuple(pair_logits.shape)}")
