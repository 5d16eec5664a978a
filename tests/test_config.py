from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncflab.config import RunConfig, apply_overrides, load_config, parse_value
from ncflab.models import MODELS
from ncflab.typed import ConfigError


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


# ------------------------------------------------------------------ typed values, by property
_TEXT = st.text(st.characters(codec="ascii", exclude_characters="\n\r\"'\\"), max_size=12)


@settings(max_examples=200, deadline=None)
@given(_TEXT)
def test_a_boolean_is_true_or_false_in_any_case_and_nothing_else(word: str) -> None:
    try:
        value = load_config(None, [f"train.refit={word}"]).train.refit
    except ConfigError as err:
        assert word.strip().lower() not in ("true", "false")
        assert "train.refit" in str(err) and "boolean" in str(err)
    else:
        assert value is (word.strip().lower() == "true")


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(-(10**6), 10**6), st.floats(allow_nan=True), _TEXT))
def test_an_integer_with_a_range_takes_exactly_the_integers_in_it(value: object) -> None:
    text = repr(value) if not isinstance(value, str) else value
    parsed = parse_value(text)  # what a --set value means: TOML, else the plain string
    ok = isinstance(parsed, int) and not isinstance(parsed, bool) and parsed >= 0
    try:
        got = load_config(None, [f"train.patience={text}"]).train.patience
    except ConfigError as err:
        assert "train.patience" in str(err) and not ok
    else:
        assert ok and got == parsed


@settings(max_examples=100, deadline=None)
@given(
    model=st.sampled_from(sorted(MODELS)),
    seed=st.integers(0, 2**31),
    split_seed=st.integers(0, 2**31),
    patience=st.one_of(st.none(), st.integers(0, 50)),
    refit=st.booleans(),
    lr=st.floats(1e-6, 1.0),
)
def test_a_config_round_trips_through_toml(model, seed, split_seed, patience, refit, lr) -> None:
    train = {"refit": refit} | ({} if patience is None else {"patience": patience})
    config = RunConfig.from_dict(
        {
            "model": model,
            "seed": seed,
            "split_seed": split_seed,
            "params": {"lr": lr},
            "train": train,
        }  # fmt: skip
    )
    again = RunConfig.from_dict(_toml(config.to_toml()))
    assert again.to_dict() == config.to_dict()


def _toml(text: str) -> dict:
    import tomllib

    return tomllib.loads(text)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_refuses_a_wrong_type_for_every_field(name: str) -> None:
    """A string where a number or a boolean is declared, for every hyperparameter of every
    model, is refused at construction, naming the field."""
    import dataclasses

    from ncflab.typed import field_types

    for f in dataclasses.fields(MODELS[name]):
        kind = field_types(MODELS[name])[f.name]
        if kind in (int, float, bool):
            with pytest.raises(ConfigError, match=f"params.{f.name} must be"):
                MODELS[name](**{f.name: "abc"})
