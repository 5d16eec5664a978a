"""How close fold-in comes to a trained user's scores, on a saved run: each sampled training
user's own training row is scored as a new user's (``score_new_users``, what ``POST
/recommendations`` does) and compared with the user's trained scores (``score``).

    python benchmarks/fold_in_agreement.py RUN [RUN ...] [--users 2000] [--seed 0]

The row is the data the final model was fitted on: the training part, with the validation
part added when the run refitted on train + valid; explicit ratings where the data has them
(the model reads them or not as it does in training). Prints one JSON line per run: model,
users compared, the largest absolute score difference, the mean share of the trained top-10
(unseen items) that fold-in keeps, and the share of users whose top-10 is identical in order.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from ncflab.experiments.run import load_run
from ncflab.runs import read_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--users", type=int, default=2000, help="users sampled per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--data-dir", default=os.environ.get("NCFLAB_DATA_DIR"))
    args = parser.parse_args()

    for run in args.runs:
        _, split, model = load_run(run, data_dir=args.data_dir)
        data = split.train
        if (read_metrics(run).get("refit") or {}).get("on") == "train+valid":
            data = data.concat(split.valid)
        rows = data.csr("rating" if data.ratings is not None else "binary")
        rng = np.random.default_rng(args.seed)
        n = min(args.users, data.n_users)
        users = np.sort(rng.choice(data.n_users, size=n, replace=False))
        worst, overlap, same = 0.0, [], []
        for s in range(0, n, args.batch):
            batch = users[s : s + args.batch]
            trained = model.score(batch)
            folded = model.score_new_users(rows[batch])
            worst = max(worst, float((trained - folded).abs().max()))
            seen = torch.from_numpy(rows[batch].toarray() > 0)
            ta = torch.where(seen, -torch.inf, trained).topk(10).indices.numpy()
            tb = torch.where(seen, -torch.inf, folded).topk(10).indices.numpy()
            overlap += [len(set(a) & set(b)) / 10 for a, b in zip(ta, tb, strict=True)]
            same += (ta == tb).all(axis=1).tolist()
        row = {
            "run": str(run),
            "model": model.name,
            "users": n,
            "max_abs_diff": float(f"{worst:.3g}"),
            "top10_overlap": round(float(np.mean(overlap)), 4),
            "same_top10_order": round(float(np.mean(same)), 4),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
