"""Training on sampled (user, positive, negative) triplets, shared by the BPR-style models
(BPR-MF, NPR): every epoch draws fresh negatives for every positive and trains on them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from ncflab.data.interactions import Interactions
from ncflab.data.sampling import NegativeSampler, bpr_triplets
from ncflab.training.loop import minibatches, train_loop
from ncflab.training.options import FitOptions

__all__ = ["fit_triplets"]


def fit_triplets(
    model: Any,
    train: Interactions,
    options: FitOptions | None,
    optimizer: Callable[[Iterator[nn.Parameter]], torch.optim.Optimizer],
) -> Any:
    """The fit of a BPR-style ``model`` (BPR, NPR): build its ``module_``, whose
    ``loss(users, pos, neg, reg)`` is the minibatch objective, and train it on every epoch's
    freshly sampled triplets (``bpr_triplets`` with ``model.n_neg`` negatives) with the
    ``optimizer`` made from the module's parameters. Returns ``model``."""
    options = options or FitOptions()
    model._check_params()
    device = options.torch_device()
    model.n_users_, model.n_items_ = train.n_users, train.n_items
    model.build_to_train(train.n_users, train.n_items, device)
    module = model.module_.to(device)
    sampler = NegativeSampler.from_csr(train.csr("binary"))

    def batches(rng: np.random.Generator):
        yield from minibatches(bpr_triplets(sampler, rng, model.n_neg), model.batch_size, device)

    def loss_fn(users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        return module.loss(users, pos, neg, model.reg)

    opt = optimizer(module.parameters())
    train_loop(model, module, opt, batches, loss_fn, epochs=model.epochs, options=options,
               prefetch=True)  # fmt: skip
    return model
