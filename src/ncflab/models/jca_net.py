"""JCA's network and block sampling.

Zhu, Wang, Caverlee, "Improving Top-K Recommendation via Joint Collaborative Autoencoders",
WWW 2019. JCA's network is a user and an item component (Eq. 2), each an
``autoencoder_net.Autoencoder`` (the item one with the learnable item normalisation factor f);
this file adds what is JCA's own: the decoded common block Ĉ of a minibatch of n users × m items
and the epoch's tiling of R into such blocks (§4.3). The estimator is ``ncflab.models.jca.JCA``;
the sampled negatives and the loss over a block are ``autoencoder.block_pairs`` and
``autoencoder.pair_loss``, which the AutoRec baselines share.
"""

from __future__ import annotations

import numpy as np
import torch

from ncflab.models.autoencoder_net import UserItemAutoencoders, decode_pairs
from ncflab.models.sparse_input import RatingGraph

__all__ = ["JCAModule", "epoch_blocks"]


class JCAModule(UserItemAutoencoders):
    """JCA's two components (Eq. 2): ``user`` over rating rows (n_items → n_items, no f) and
    ``item`` over rating columns (n_users → n_users, with f unless ``normalise`` is False:
    JCA-NF), trained together on blocks (§4.3)."""

    def block(self, graph: RatingGraph, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Ĉ (n, m) of §4.3 for users p (n,) and items q (m,), both sorted:
        ½ (B̂^U[:, q] + B̂^I[p, :]), the user component fed the n rows R[p, :], the item
        component the m columns R[:, q]; only the n × m common entries are decoded."""
        out_u = self.user.decode(self.user.hidden(graph.user_bag(p), p), q)  # (n, m)
        out_i = self.item.decode(self.item.hidden(graph.item_bag(q), q), p)  # (m, n)
        return 0.5 * (out_u + out_i.T)

    def pairs(
        self, graph: RatingGraph, p: torch.Tensor, q: torch.Tensor, rows: torch.Tensor,
        cols: torch.Tensor,
    ) -> torch.Tensor:  # fmt: skip
        """Ĉ at the positions (``rows``, ``cols``) (P,) of the block of users p and items q
        only: ``block(graph, p, q)[rows, cols]`` to float rounding, from the same two hidden
        layers, with P dot products a component instead of the n × m decoded block. The loss
        reads Ĉ at its pairs alone and the other entries get no gradient, so the two give one
        training step."""
        h_u = self.user.hidden(graph.user_bag(p), p)  # (n, H)
        h_i = self.item.hidden(graph.item_bag(q), q)  # (m, H)
        out_u = decode_pairs(self.user, h_u, rows, q, cols)  # B̂^U[p[rows], q[cols]]
        out_i = decode_pairs(self.item, h_i, cols, p, rows)  # B̂^I[p[rows], q[cols]]
        return 0.5 * (out_u + out_i)

    def squared_norm(self) -> torch.Tensor:
        """‖Θ‖²_F of Eq. 3 over both components (f excluded, see ``Autoencoder``)."""
        return self.user.squared_norm() + self.item.squared_norm()


def epoch_blocks(
    n_users: int, n_items: int, block_users: int, block_items: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One epoch of §4.3's mini-batches: users and items are permuted, cut into consecutive
    chunks of ``block_users`` and ``block_items`` (the last ones shorter), and every (user chunk,
    item chunk) pair is one block, user chunks outer (as in the authors' code). Each block's
    users p and items q are returned sorted (the order inside a block does not change the loss,
    and the sparse layer's gradient needs sorted rows). Together the blocks tile R exactly once.
    """
    users, items = rng.permutation(n_users), rng.permutation(n_items)
    u_chunks = [np.sort(users[s : s + block_users]) for s in range(0, n_users, block_users)]
    i_chunks = [np.sort(items[s : s + block_items]) for s in range(0, n_items, block_items)]
    return [(p, q) for p in u_chunks for q in i_chunks]
