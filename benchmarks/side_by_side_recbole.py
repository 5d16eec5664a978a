"""The RecBole side of ``side_by_side.py``: one fresh process times one training epoch and/or one
full-sort test evaluation of one model with RecBole 1.2.1, and prints one result line.

It runs in RecBole's own virtual environment (old pins: numpy < 2, pandas < 2.2), never in
ncflab's, so it imports neither ncflab nor ``harness``; ``side_by_side.py`` starts it, e.g.

    cd /tmp/sbs/run-X/recbole-neumf-0 && OMP_NUM_THREADS=1 TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 \\
        /tmp/rbvenv/bin/python /work/main/benchmarks/side_by_side_recbole.py --model neumf \\
        --what epoch eval --batch 256 --eval-users 256 --data-path /tmp/sbs/run-X/data

(the working directory matters: RecBole's Trainer writes ``log_tensorboard/`` into it). The
last line of stdout is ``SBS_RESULT {json}`` with the seconds, the record counts and the metrics.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import torch

# ncflab's name → RecBole's model name and the settings that are not RecBole's defaults. Every
# other hyperparameter is the model's yaml default in RecBole 1.2.1: NeuMF mf/mlp embeddings 64,
# mlp_hidden_size [128, 64], dropout 0.1; BPR embedding_size 64; MultiVAE mlp_hidden_size [600],
# latent_dimension 128 (μ and log σ² of 64 each), dropout 0.5, anneal_cap 0.2.
MODELS: dict[str, str] = {"neumf": "NeuMF", "bpr": "BPR", "multvae": "MultiVAE"}
# RecBole's default full-ranking metrics, the same set ncflab's side computes.
METRICS = ["Recall", "MRR", "NDCG", "Hit", "Precision"]
RESULT_TAG = "SBS_RESULT "


def config_dict(args: argparse.Namespace) -> dict[str, Any]:
    """The RecBole settings of a run: CPU, quiet, leave-one-out by time, 1 uniform negative."""
    return {
        "gpu_id": "",  # CPU: an empty id list makes RecBole's device torch.device("cpu")
        "use_gpu": False,
        "seed": args.seed,
        "reproducibility": True,
        "state": "WARNING",
        "show_progress": False,
        "data_path": str(args.data_path),
        "checkpoint_dir": str(Path.cwd() / "saved"),
        # All ratings are implicit positives: no rating column, no threshold, no filter.
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        # Leave-one-out by time (latest record test, second latest valid): the same split as
        # ncflab's ``leave_one_out(validation="latest")``, hence the same 988,129 train records.
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "group_by": "user",
            "mode": "full",
        },
        "metrics": METRICS,
        "topk": [10],
        "epochs": 1,
        "train_batch_size": args.batch,
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
        "learning_rate": 1e-3,
        "worker": 0,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), required=True)
    p.add_argument("--what", nargs="+", choices=["epoch", "eval"], default=["epoch", "eval"])
    p.add_argument("--batch", type=int, required=True, help="RecBole's train_batch_size")
    p.add_argument("--eval-users", type=int, default=256, help="users per evaluation batch")
    p.add_argument("--data-path", type=Path, required=True, help="holds ml-1m/ml-1m.inter")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    # Before RecBole builds anything: one intra-op and one inter-op thread, as on ncflab's side.
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    print(RESULT_TAG + json.dumps(run(args)), flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load and split (untimed), then time the requested epoch and evaluation."""
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    name = MODELS[args.model]
    config = Config(model=name, dataset="ml-1m", config_dict=config_dict(args))
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    # RecBole's eval_batch_size counts (user, item) pairs: its default 4096 is one ML-1M user
    # per batch. ``eval_users`` whole users per batch, like ncflab's evaluate(batch_size=...).
    config["eval_batch_size"] = args.eval_users * dataset.item_num
    train_data, _valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(name)(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], name)(config, model)
    out: dict[str, Any] = {
        "library": "recbole",
        "recbole": recbole.__version__,
        "torch": torch.__version__,
        "model": args.model,
        "train_records": int(train_data._dataset.inter_num),
        "test_records": int(test_data._dataset.inter_num),
        # RecBole counts a padding user and item (index 0) in its sizes.
        "n_users": int(dataset.user_num),
        "n_items": int(dataset.item_num),
        "steps": len(train_data),
        "config": {k: _plain(config[k]) for k in _shown(args.model)},
        "eval_users": args.eval_users,
        "eval_batch_size": config["eval_batch_size"],
        "threads": torch.get_num_threads(),
    }
    if "epoch" in args.what:
        # One epoch exactly as Trainer.fit runs it, without fit's validation and logging; the
        # batches' negative sampling happens inside the loader, so it is timed, as ncflab's.
        t0, c0 = time.perf_counter(), time.process_time()
        loss = trainer._train_epoch(train_data, 0, show_progress=False)
        out["epoch_seconds"] = time.perf_counter() - t0
        out["epoch_cpu_seconds"] = time.process_time() - c0
        out["loss"] = float(sum(loss) if isinstance(loss, tuple) else loss) / len(train_data)
    if "eval" in args.what:
        # Full sort of every test user against every item (masked history, top-10 metrics).
        t0, c0 = time.perf_counter(), time.process_time()
        result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
        out["eval_seconds"] = time.perf_counter() - t0
        out["eval_cpu_seconds"] = time.process_time() - c0
        out["metrics"] = {k: float(v) for k, v in result.items()}
    out["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def _shown(model: str) -> list[str]:
    """The config keys a result line records for ``model`` (its network and batch)."""
    common = ["train_batch_size", "learning_rate", "train_neg_sample_args"]
    per_model = {
        "neumf": ["mf_embedding_size", "mlp_embedding_size", "mlp_hidden_size", "dropout_prob"],
        "bpr": ["embedding_size"],
        "multvae": ["mlp_hidden_size", "latent_dimension", "dropout_prob", "anneal_cap"],
    }
    return common + per_model[model]


def _plain(value: Any) -> Any:
    """A config value as JSON can write it."""
    return value if isinstance(value, int | float | str | list | dict | None) else str(value)


if __name__ == "__main__":
    main()
