"""Training losses: point-wise (log, MSE), pair-wise (BPR, TOP1, TOP1-max, BPR-max, hinge), XE.

Every function is pure, vectorised and differentiable, and returns the scalar mean over the
batch. Pair-wise losses take ``pos`` (B,) scores of the observed items and ``neg`` (B, n_neg)
scores of the sampled negatives of the same rows. Sources:

- J-NCF: Chen et al., "Joint Neural Collaborative Filtering for Recommender Systems", TOIS 2019,
  §3.3, Eq. 9–16. Its pair-wise losses are applied to ŷ, the *sigmoid outputs* of Eq. 7, which is
  what the paper writes; these functions are agnostic and ``hybrid`` feeds them ŷ.
- TOP1, TOP1-max, BPR-max: Hidasi & Karatzoglou, "Recurrent Neural Networks with Top-k Gains for
  Session-based Recommendations", CIKM 2018 (J-NCF's [19]); code at github.com/hidasib/GRU4Rec.
- BPR: Rendle et al., UAI 2009, Sec. 4.1. Hinge: JCA, Zhu et al., WWW 2019, Eq. 3.
- Multinomial log-likelihood and the Gaussian KL term: Liang et al., "Variational
  Autoencoders for Collaborative Filtering", WWW 2018, §2 (Mult-VAE, Mult-DAE).

Value ranges (targets in [0, 1], probabilities in (0, 1)) are not checked: that would force a
device→host sync on every training step. Shapes are checked, which is free.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "PAIRWISE",
    "bpr",
    "bpr_max",
    "gaussian_kl",
    "hinge",
    "hybrid",
    "log_loss",
    "mse",
    "multinomial",
    "top1",
    "top1_max",
    "xe",
]

# Clamp for log loss on probabilities: keeps log(ŷ), log(1 − ŷ) finite when σ saturates to
# exactly 0 or 1 in float32 (σ(±17) already does); 1 − 1e-7 is still representable in float32.
EPS = 1e-7


def _check_pair(pos: torch.Tensor, neg: torch.Tensor) -> None:
    if pos.dim() != 1:
        raise ValueError(f"pos must be 1-D (B,), got shape {tuple(pos.shape)}")
    if neg.dim() != 2:
        raise ValueError(f"neg must be 2-D (B, n_neg), got shape {tuple(neg.shape)}")
    if neg.shape[0] != pos.shape[0] or pos.shape[0] == 0 or neg.shape[1] == 0:
        raise ValueError(
            f"pos (B,) and neg (B, n_neg) need the same B >= 1 and n_neg >= 1, got "
            f"pos {tuple(pos.shape)} and neg {tuple(neg.shape)}"
        )


def _check_same(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.numel() == 0:
        raise ValueError(
            f"{name} must match pred's non-empty shape {tuple(a.shape)}, got {tuple(b.shape)}"
        )


def log_loss(pred: torch.Tensor, target: torch.Tensor, *, logits: bool = False) -> torch.Tensor:
    """J-NCF Eq. 10 (and the point-wise part of Eq. 16): mean of −[Y log ŷ + (1 − Y) log(1 − ŷ)].

    pred: any shape; probabilities ŷ ∈ (0, 1), clamped to [EPS, 1 − EPS], or raw logits when
    ``logits=True`` (then ŷ = σ(pred), computed stably by ``binary_cross_entropy_with_logits``).
    target: same shape, in [0, 1]; for explicit feedback J-NCF uses Y_ui = y_ui / max(R_u).
    """
    _check_same("target", pred, target)
    target = target.to(pred.dtype)
    if logits:
        return F.binary_cross_entropy_with_logits(pred, target)
    p = pred.clamp(EPS, 1.0 - EPS)
    return -(target * torch.log(p) + (1.0 - target) * torch.log1p(-p)).mean()


def mse(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """J-NCF Eq. 9 weighted squared loss: mean of w_ui (y_ui − ŷ_ui)² over all entries.

    pred, target: same shape; weight: broadcastable to it, or None for w = 1. The mean divides by
    the number of entries (not by Σ w), so weights rescale entries against each other and the loss.
    """
    _check_same("target", pred, target)
    sq = (target.to(pred.dtype) - pred).square()
    return sq.mean() if weight is None else (weight * sq).mean()


def bpr(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Rendle 2009 BPR: mean over (B, n_neg) of −log σ(ŷ_ui − ŷ_uj) = softplus(ŷ_uj − ŷ_ui)."""
    _check_pair(pos, neg)
    return F.softplus(neg - pos[:, None]).mean()


def top1(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """J-NCF Eq. 11: (1/|NS|) Σ_j σ(ŷ_uj − ŷ_ui) + σ(ŷ_uj²), averaged over the batch.

    The first term approximates the target's relative rank, the second pushes negatives' scores
    to 0. Unlike GRU4Rec's in-batch version, the target is not among the negatives, so there is no
    σ(ŷ_ui²)/N correction term.
    """
    _check_pair(pos, neg)
    return (torch.sigmoid(neg - pos[:, None]) + torch.sigmoid(neg.square())).mean()


def top1_max(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """J-NCF Eq. 12: Σ_j s_j (σ(ŷ_uj − ŷ_ui) + σ(ŷ_uj²)), s = softmax over the negatives' scores.

    The softmax weights s_j (B, n_neg) stay in the graph (no detach), as in the reference
    GRU4Rec code, whose ``softmax_neg`` has no gradient stop.
    """
    _check_pair(pos, neg)
    s = torch.softmax(neg, dim=1)
    per_row = (s * (torch.sigmoid(neg - pos[:, None]) + torch.sigmoid(neg.square()))).sum(1)
    return per_row.mean()


def bpr_max(pos: torch.Tensor, neg: torch.Tensor, reg: float = 0.0) -> torch.Tensor:
    """J-NCF Eq. 13: −log Σ_j s_j σ(ŷ_ui − ŷ_uj), plus GRU4Rec's ``reg · Σ_j s_j ŷ_uj²``.

    s = softmax over the negatives' scores (gradient kept, as in GRU4Rec). GRU4Rec adds 1e-24
    inside the log; we instead evaluate it in log space,
    ``−logsumexp_j(log_softmax(neg)_j + log σ(ŷ_ui − ŷ_uj))``, which is exact and stays finite
    however large the scores. ``reg`` is GRU4Rec's ``bpreg`` (its default 1.0; ours 0, as Eq. 13).
    """
    _check_pair(pos, neg)
    log_terms = torch.log_softmax(neg, dim=1) + F.logsigmoid(pos[:, None] - neg)
    loss = -torch.logsumexp(log_terms, dim=1)
    if reg:
        loss = loss + reg * (torch.softmax(neg, dim=1) * neg.square()).sum(1)
    return loss.mean()


def xe(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """J-NCF Eq. 14 softmax cross-entropy: −log(e^{ŷ_ui} / (e^{ŷ_ui} + Σ_j e^{ŷ_uj})).

    Eq. 14 prints the normaliser as a sum over NS only; we include the target, as in the standard
    softmax+XE (and GRU4Rec, whose softmax runs over the target and the samples). Without it the
    "loss" is log Σ_j e^{ŷ_uj} − ŷ_ui, which is unbounded below and not a log-likelihood.
    """
    _check_pair(pos, neg)
    return (torch.logsumexp(torch.cat([pos[:, None], neg], dim=1), dim=1) - pos).mean()


def hinge(pos: torch.Tensor, neg: torch.Tensor, margin: float = 0.15) -> torch.Tensor:
    """JCA Eq. 3 pairwise hinge: mean over (B, n_neg) of max(0, r̂_uj − r̂_ui + d).

    JCA applies it to sigmoid outputs r̂ ∈ (0, 1) with margin d = 0.15 (its §5.2); the L2 term
    of Eq. 3 belongs to the model, not here.
    """
    _check_pair(pos, neg)
    return F.relu(neg - pos[:, None] + margin).mean()


PAIRWISE: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "top1": top1,
    "top1-max": top1_max,
    "bpr-max": bpr_max,
    "bpr": bpr,
    "xe": xe,
    "hinge": hinge,
}


def hybrid(
    pos: torch.Tensor,
    neg: torch.Tensor,
    pos_target: torch.Tensor,
    *,
    pair: str = "top1",
    alpha: float = 0.7,
    logits: bool = False,
) -> torch.Tensor:
    """J-NCF Eq. 15–16 hybrid loss: α · L_pair(ŷ_ui, ŷ_uj) + (1 − α) · L_log.

    pos: (B,) ŷ_ui, neg: (B, n_neg) ŷ_uj, probabilities (Eq. 7), or logits when ``logits=True``
    (the pair-wise part then still sees σ(logit), as the paper writes; the log loss is computed
    from the logits, which is stabler). pos_target: (B,) Y_ui = y_ui / max(R_u) (1 for implicit).
    Defaults α = 0.7 and TOP1 are the paper's choice (§5.2, Fig. 3).

    Eq. 16 writes the point-wise term for (u, i) only, but a log loss whose targets are all
    positive would be minimised by ŷ ≡ 1; as in NCF, and since J-NCF's Algorithm 1 feeds ŷ_uj
    of the sampled negatives to Eq. 16, the negatives enter it with target 0. It is averaged over
    all B · (1 + n_neg) point-wise terms, so it stays on the scale of Eq. 10 whatever n_neg.
    """
    _check_pair(pos, neg)
    if pair not in PAIRWISE:
        raise ValueError(f"pair must be one of {sorted(PAIRWISE)}, got {pair!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if pos_target.shape != pos.shape:
        raise ValueError(
            f"pos_target must have pos's shape {tuple(pos.shape)}, got {tuple(pos_target.shape)}"
        )
    scores = torch.cat([pos[:, None], neg], dim=1)  # (B, 1 + n_neg)
    targets = torch.zeros_like(scores)
    targets[:, 0] = pos_target.to(scores.dtype)
    point = log_loss(scores, targets, logits=logits)
    probs = torch.sigmoid(scores) if logits else scores
    return alpha * PAIRWISE[pair](probs[:, 0], probs[:, 1:]) + (1.0 - alpha) * point


def multinomial(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Liang et al. 2018, Eq. 2, negated: mean over rows u of −Σ_i x_ui log π_i(z_u), with
    π(z_u) = softmax(logits_u) over all items (the multinomial log-likelihood up to the
    constant log N_u! / Π x_ui!, which does not depend on the model).

    logits: (B, n_items) unnormalised f_θ(z_u); target: (B, n_items) counts x_u (0/1 clicks).
    The sum over items (not a mean) is the paper's: every click of the user is one draw.
    """
    _check_same("target", logits, target)
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D (B, n_items), got shape {tuple(logits.shape)}")
    return -(target.to(logits.dtype) * torch.log_softmax(logits, dim=1)).sum(1).mean()


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q_φ(z_u | x_u) ‖ p(z_u)) of the Mult-VAE ELBO (Liang et al. 2018, §2.2) for a
    diagonal Gaussian q = N(μ, diag σ²) and the prior p = N(0, I_K), in closed form
    ½ Σ_k (σ_k² + μ_k² − 1 − log σ_k²), averaged over the B rows.

    mu, logvar: (B, K), logvar = log σ² (the encoder's output; σ = exp(logvar / 2)).
    """
    _check_same("logvar", mu, logvar)
    return 0.5 * (logvar.exp() + mu.square() - 1.0 - logvar).sum(-1).mean()
