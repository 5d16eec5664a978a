from __future__ import annotations

from pathlib import Path

import pytest

from ncflab.config import RunConfig, apply_overrides, load_config, parse_value


def test_parse_value_reads_toml_literals_and_falls_back_to_strings() -> None:
    assert parse_value("0.01") == 0.01
    assert parse_value("3") == 3
    assert parse_value("true") is True
    assert parse_value("[10, 20]") == [10, 20]
    assert parse_value("ml-1m") == "ml-1m"
    assert parse_value('"x y"') == "x y"


def test_overrides_set_dotted_keys_without_touching_the_input() -> None:
    raw = {"params": {"lr": 0.1}}
    out = apply_overrides(raw, ["params.lr=0.01", "train.patience=3", "seed=2"])
    assert out == {"params": {"lr": 0.01}, "train": {"patience": 3}, "seed": 2}
    assert raw == {"params": {"lr": 0.1}}


def test_bad_override_is_named() -> None:
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides({}, ["lr"])
    with pytest.raises(ValueError, match="'seed' is not a table"):
        apply_overrides({"seed": 1}, ["seed.x=2"])


def test_file_then_overrides_then_round_trip(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        'dataset = "ml-100k"\nmodel = "bpr"\n[params]\nfactors = 8\n[train]\npatience = 2\n'
    )
    cfg = load_config(path, ["params.factors=16", "protocol=jncf"])
    assert (cfg.dataset, cfg.protocol, cfg.params, cfg.train.patience) == (
        "ml-100k",
        "jncf",
        {"factors": 16},
        2,
    )
    again = tmp_path / "again.toml"
    again.write_text(cfg.to_toml())
    assert load_config(again) == cfg


def test_unknown_keys_are_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown config key"):
        RunConfig.from_dict({"datset": "ml-1m"})
    with pytest.raises(ValueError, match="unknown train option"):
        RunConfig.from_dict({"train": {"patiense": 1}})
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("dataset = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(bad)


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "configs").glob("*.toml")), ids=lambda p: p.name
)
def test_shipped_configs_name_real_models_datasets_and_protocols(path: Path) -> None:
    from ncflab.data.datasets import DATASETS
    from ncflab.experiments.presets import PROTOCOLS
    from ncflab.experiments.run import build_model

    config = load_config(path)
    assert config.dataset in DATASETS and config.protocol in PROTOCOLS
    build_model(config.model, config.params, config.seed)  # unknown fields raise
