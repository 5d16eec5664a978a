"""NCR experiments (Song et al. 2018): the two ranking rules of a trained pairwise model compared.

§4.4 ranks with Algorithm 1 (K passes of a sequential "king of the hill" scan under the rule
i ≻ j iff ŷ_uij > ŷ_uji); ncflab's evaluation ranks by win counts, which stay consistent when
the learned relation has cycles. ``compare_rules`` scores each user's held-out item among its
sampled negatives both ways and measures how often the relation is intransitive.
"""

from __future__ import annotations

import numpy as np
import torch

from ncflab.data.splits import Split
from ncflab.models.ncr import NCRBase
from ncflab.models.ncr_rank import algorithm1_topk, intransitive_fraction, win_counts

__all__ = ["compare_rules"]


POSITIONS = ("random", "first", "last")


def compare_rules(
    model: NCRBase,
    split: Split,
    *,
    part: str = "test",
    k: int = 10,
    position: str = "random",
    seed: int = 0,
    batch_size: int = 512,
) -> dict[str, float]:
    """HR@k and NDCG@k of the held-out item under both rules, their agreement, and the mean
    fraction of intransitive candidate triangles, over users with one held-out item.

    Algorithm 1 depends on the order of the list: a candidate late in the scan only has to beat
    the running ``max``, not everything before it, so where the held-out item sits matters once
    the relation has cycles. ``position`` puts it "first", "last" or at a "random" (seeded)
    place among the sampled negatives. (Its line 7 keeps the earlier item on a tie; the
    win-count rank counts equal counts against the held-out item.)

    Keys: ``HR@k``/``NDCG@k`` with suffix ``wins`` or ``alg1``; ``hit_agreement``, the share
    of users on whom the two hit@k agree; ``topk_overlap``, mean |top-k ∩ top-k| / k (win-count
    ties broken by list order); ``intransitive``, the mean over users with a decided triangle of
    the share of decided triangles that are cycles; ``users``.
    """
    users, items, slot = _candidates(split, part, position, seed)
    keys = ("wins", "alg1", "hit_agree", "overlap", "ndcg_w", "ndcg_a", "cycles", "decided")
    sums = dict.fromkeys(keys, 0.0)
    for s in range(0, len(users), batch_size):
        pairs = model.pair_logits(users[s : s + batch_size], items[s : s + batch_size])
        held = torch.from_numpy(slot[s : s + batch_size])[:, None]
        wins = win_counts(pairs)
        pos_w = (wins >= wins.gather(1, held)).sum(1) - 1  # others ranked at or above it
        top_a = algorithm1_topk(pairs, k)
        hit_a = (top_a == held).any(1)
        pos_a = torch.where(hit_a, (top_a == held).int().argmax(1), k)
        top_w = torch.sort(-wins, dim=1, stable=True).indices[:, :k]
        sums["wins"] += float((pos_w < k).sum())
        sums["alg1"] += float(hit_a.sum())
        sums["hit_agree"] += float(((pos_w < k) == hit_a).sum())
        sums["overlap"] += float(
            (top_w[:, :, None] == top_a[:, None, :]).any(2).float().mean(1).sum()
        )
        sums["ndcg_w"] += _dcg(pos_w, k)
        sums["ndcg_a"] += _dcg(pos_a, k)
        cyc = intransitive_fraction(pairs)  # NaN for a user without a decided triangle
        sums["cycles"] += float(torch.nan_to_num(cyc).sum())
        sums["decided"] += float((~torch.isnan(cyc)).sum())
    n = len(users)
    return {
        f"HR@{k} wins": sums["wins"] / n,
        f"NDCG@{k} wins": sums["ndcg_w"] / n,
        f"HR@{k} alg1": sums["alg1"] / n,
        f"NDCG@{k} alg1": sums["ndcg_a"] / n,
        "hit_agreement": sums["hit_agree"] / n,
        "topk_overlap": sums["overlap"] / n,
        "intransitive": sums["cycles"] / max(sums["decided"], 1.0),
        "users": float(n),
    }


def _candidates(
    split: Split, part: str, position: str, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Users with one held-out record, their (n, 1 + n_neg) candidate lists with the held-out
    item at ``position`` among the sampled negatives, and that slot (n,)."""
    held = {"test": split.test, "valid": split.valid}.get(part)
    if held is None or split.negatives is None:
        raise ValueError(f"comparing rules needs a {part!r} part and sampled negatives")
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
    csr = held.csr("binary")
    users = np.flatnonzero(np.diff(csr.indptr) == 1)
    negatives = split.negatives[users]
    c = negatives.shape[1] + 1
    if position == "random":
        slot = np.random.default_rng(seed).integers(0, c, len(users))
    else:
        slot = np.full(len(users), 0 if position == "first" else c - 1)
    at = np.arange(c)[None, :] == slot[:, None]
    items = np.empty((len(users), c), np.int64)
    items[at] = csr.indices[csr.indptr[users]]
    items[~at] = negatives.ravel()  # row-major: each row's negatives keep their order
    return users, items, slot


def _dcg(positions: torch.Tensor, k: int) -> float:
    """Σ over users of 1 / log2(p + 2) for positions p < k (one relevant item: IDCG = 1)."""
    gain = 1.0 / torch.log2(positions.double() + 2)
    return float(torch.where(positions < k, gain, 0.0).sum())
