from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ncflab.data import _fetch, datasets, filters
from ncflab.data.datasets import (
    DATASETS,
    DatasetNotFoundError,
    describe,
    is_available,
    load_dataset,
    load_frame,
    load_split_files,
)
from ncflab.data.interactions import Interactions

ML100K = "1\t10\t4\t100\n2\t10\t3\t200\n2\t20\t5\t300\n"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache, no $NCFLAB_DATA_DIR, and a network that always fails."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NCFLAB_CACHE_DIR", str(cache))
    monkeypatch.delenv("NCFLAB_DATA_DIR", raising=False)

    def offline(*args: object, **kwargs: object) -> str:
        raise ConnectionError("no network in tests")

    monkeypatch.setattr(_fetch.pooch, "retrieve", offline)
    return cache


def _put(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


# --------------------------------------------------------------------------------- the table
def test_every_spec_is_complete_and_hashes_are_pinned_or_explained() -> None:
    for name, spec in DATASETS.items():
        assert spec.name == name and spec.description and spec.files
        hashes = [spec.archive_hash] if spec.archive_url else [f.known_hash for f in spec.files]
        urls = [spec.archive_url] if spec.archive_url else [f.url for f in spec.files]
        assert all(u and u.startswith(("https://", "http://")) for u in urls), name
        for h in hashes:
            assert h is None or h.split(":")[0] in ("md5", "sha256"), name
        assert all(hashes) or spec.hash_note, f"{name}: no hash and no note saying why"
        roles = {f.role for f in spec.files}
        assert roles == {"ratings"} or (spec.fixed_split and {"train", "test"} <= roles)
    assert DATASETS["ml-1m"].archive_hash == "md5:c4d9eecfca2ab87c1945afe126590906"


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown dataset 'ml-2m'.*'ml-1m'"):
        load_dataset("ml-2m")


# ------------------------------------------------------------------------------- resolution
def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arg, env = tmp_path / "arg", tmp_path / "env"
    _put(env / "ml-100k", "u.data", ML100K)
    monkeypatch.setenv("NCFLAB_DATA_DIR", str(env))
    assert len(load_frame("ml-100k", download=False)) == 3  # found through the env
    _put(arg, "u.data", "".join(ML100K.splitlines(True)[:1]))  # flat layout <dir>/<file>
    assert len(load_frame("ml-100k", data_dir=arg, download=False)) == 1  # argument wins
    _put(
        arg / "ml-100k", "u.data", "".join(ML100K.splitlines(True)[:2])
    )  # <dir>/<name>/<file> beats <dir>/<file>
    assert len(load_frame("ml-100k", data_dir=arg, download=False)) == 2
    assert is_available("ml-100k", arg) and not is_available("ml-1m", arg)


def test_flat_layout_only_for_names_that_identify_one_dataset(tmp_path: Path) -> None:
    flat = _fetch.flat_names(DATASETS.values())
    assert {"u.data", "ml-1m.zip", "ml-1m.train.rating", "ratings_Books.csv"} <= flat
    assert not {"ratings.dat", "ratings.csv", "train.csv", "vali.csv", "test.csv"} & flat
    _put(tmp_path, "ratings.dat", "1::2::3::4\n")  # ml-1m's name, but ml-10m's too
    for name in ("train.csv", "vali.csv", "test.csv"):  # any project's split, not only JCA's
        _put(tmp_path, name, "userId,movieId\n1,1\n")
    assert not is_available("ml-1m", tmp_path) and not is_available("ml-10m", tmp_path)
    assert not is_available("jca-ml-1m", tmp_path)
    with pytest.raises(DatasetNotFoundError):
        load_split_files("jca-ml-1m", data_dir=tmp_path, download=False)
    _put(tmp_path / "ml-1m", "ratings.dat", "1::2::3::4\n")  # under its dataset's name: found
    assert is_available("ml-1m", tmp_path) and not is_available("ml-10m", tmp_path)


def test_missing_file_error_names_file_dirs_url_and_remedy(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("ml-1m", data_dir=tmp_path, download=False)
    msg = str(info.value)
    for part in (
        "'ratings.dat'",
        str(tmp_path / "ml-1m" / "ratings.dat"),
        str(datasets.cache_dir() / "ml-1m" / "ratings.dat"),
        "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        "download=False",
        "--data-dir",
        "NCFLAB_DATA_DIR",
    ):
        assert part in msg
    assert str(tmp_path / "ratings.dat") not in msg  # shared by ml-1m and ml-10m: never flat


def test_failed_download_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"downloading https://.*failed.*no network"):
        load_dataset("amazon-digital-music", data_dir=tmp_path)
    assert isinstance(DatasetNotFoundError("x"), FileNotFoundError)  # the CLI catches these


def _zip(path: Path, member: str, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, text)
    return path


def test_local_archive_is_unpacked_into_the_cache(
    tmp_path: Path, _isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _zip(tmp_path / "data" / "ml-100k.zip", "ml-100k/u.data", ML100K)
    with pytest.raises(DatasetNotFoundError, match=r"ml-100k.zip has md5 .*expected 0e3384"):
        load_frame("ml-100k", data_dir=tmp_path / "data", download=False)
    spec = datasets.DATASETS["ml-100k"]
    monkeypatch.setitem(datasets.DATASETS, "ml-100k", replace(spec, archive_hash=None))
    frame = load_frame("ml-100k", data_dir=tmp_path / "data", download=False)
    assert len(frame) == 3
    assert (_isolated / "ml-100k" / "u.data").is_file()
    _zip(tmp_path / "bad" / "ml-100k.zip", "other/u.data", ML100K)
    (_isolated / "ml-100k" / "u.data").unlink()
    with pytest.raises(DatasetNotFoundError, match="no member 'ml-100k/u.data'"):
        load_frame("ml-100k", data_dir=tmp_path / "bad", download=False)


def test_download_passes_the_pinned_hash_and_logs_unpinned_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def fake_retrieve(url: str, known_hash: str | None, fname: str, path: Path) -> str:
        calls.append((url, known_hash))
        if fname.endswith(".zip"):
            return str(_zip(Path(path) / fname, "ml-1m/ratings.dat", "1::2::3::4\n"))
        return str(_put(Path(path), fname, "A1,B1,5.0,10\n"))

    monkeypatch.setattr(_fetch.pooch, "retrieve", fake_retrieve)
    assert len(load_frame("ml-1m")) == 1
    assert calls[-1] == (DATASETS["ml-1m"].archive_url, DATASETS["ml-1m"].archive_hash)
    with caplog.at_level(logging.WARNING, logger="ncflab.data._fetch"):
        assert load_frame("amazon-movies-tv")["item"].tolist() == ["B1"]
    assert calls[-1][1] is None and "sha256 of the download" in caplog.text


# --------------------------------------------------------------------------- fixed splits
def _pin(monkeypatch: pytest.MonkeyPatch, name: str, folder: Path) -> None:
    """Pin ``name``'s files to the sha256 of the synthetic copies in ``folder``."""
    spec = DATASETS[name]
    files = tuple(
        replace(f, known_hash="sha256:" + _fetch.pooch.file_hash(str(folder / f.name)))
        for f in spec.files
    )
    monkeypatch.setitem(DATASETS, name, replace(spec, files=files))


def test_fixed_split_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jca = tmp_path / "jca-ml-1m"
    _put(jca, "train.csv", "userId,movieId\n1,1\n1,2\n2,1\n")
    _put(jca, "vali.csv", "userId,movieId\n1,2\n")
    _put(jca, "test.csv", "userId,movieId\n2,2\n")
    with pytest.raises(DatasetNotFoundError, match=r"train.csv is not the published.*sha256"):
        load_split_files("jca-ml-1m", data_dir=tmp_path, download=False)
    _pin(monkeypatch, "jca-ml-1m", jca)
    frames = load_split_files("jca-ml-1m", data_dir=tmp_path, download=False)
    assert sorted(frames) == ["test", "train", "valid"] and len(frames["valid"]) == 1
    assert len(load_frame("jca-ml-1m", data_dir=tmp_path)) == 4  # vali ⊂ train: not twice
    ncf = tmp_path / "ncf-ml-1m"
    _put(ncf, "ml-1m.train.rating", "0\t1\t5\t10\n1\t0\t4\t11\n")
    _put(ncf, "ml-1m.test.rating", "0\t2\t5\t12\n1\t2\t3\t13\n")
    _put(ncf, "ml-1m.test.negative", "(0,2)\t0\t3\n(1,2)\t1\t3\n")
    frames = load_split_files("ncf-ml-1m", data_dir=tmp_path)
    assert frames["negatives"].columns.tolist() == ["user", "item", "neg_0", "neg_1"]
    assert len(load_dataset("ncf-ml-1m", data_dir=tmp_path)) == 4
    with pytest.raises(ValueError, match="no published split.*'jca-ml-1m'"):
        load_split_files("ml-100k")


def test_describe_counts() -> None:
    frame = pd.DataFrame(
        {"user": [1, 1, 1, 2], "item": [5, 5, 6, 5], "rating": [1.0, 2.0, 2.0, 4.5]}
    )
    frame["timestamp"] = [9, 3, 4, 7]
    stats = describe(Interactions.from_frame(frame))
    assert stats["users"] == 2 and stats["items"] == 2 and stats["ratings"] == 4
    assert stats["density"] == 1.0 and stats["duplicate_pairs"] == 1
    assert stats["duplicate_records"] == 1 and stats["min_item_records"] == 1
    assert stats["rating_histogram"] == {1.0: 1, 2.0: 2, 4.5: 1}
    assert (stats["timestamp_min"], stats["timestamp_max"]) == (3, 9)
    implicit = describe(Interactions.from_frame(frame[["user", "item"]]))
    assert implicit["rating_histogram"] is None and implicit["timestamp_min"] is None


# ------------------------------------------------------------------------------- real data
# Figures from each dataset's SOURCE.md in the shared data directory.
REAL = {
    "ml-100k": (943, 1682, 100_000, {1: 6110, 2: 11370, 3: 27145, 4: 34174, 5: 21201},
                (874724710, 893286638)),
    "ml-1m": (6040, 3706, 1_000_209, {1: 56174, 2: 107557, 3: 261197, 4: 348971, 5: 226310},
              (None, 1046454590)),
    "ml-latest-small": (610, 9724, 100_836, None, (828124615, 1537799250)),
    "amazon-digital-music": (844, 18813, 46_468,
                             {1: 1459, 2: 2004, 3: 4984, 4: 12650, 5: 25371},
                             (894931200, 1406073600)),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_describe_matches_source(name: str, data_dir: Path) -> None:
    users, items, n, hist, (t_min, t_max) = REAL[name]
    stats = describe(load_dataset(name, data_dir=data_dir, download=False))
    assert (stats["users"], stats["items"], stats["ratings"]) == (users, items, n)
    assert stats["duplicate_pairs"] == 0
    if hist is not None:
        assert stats["rating_histogram"] == {float(k): v for k, v in hist.items()}
    else:  # half stars 0.5 … 5.0
        assert sorted(stats["rating_histogram"]) == [k / 2 for k in range(1, 11)]
    assert t_min is None or stats["timestamp_min"] == t_min
    assert stats["timestamp_max"] == t_max


@pytest.mark.slow
def test_real_jca_filter_reproduces_the_published_split(data_dir: Path) -> None:
    jca = filters.jca_filter(load_dataset("ml-1m", data_dir=data_dir, download=False))
    assert (jca.n_users, jca.n_items, len(jca)) == (6027, 3062, 574_026)
    frames = load_split_files("jca-ml-1m", data_dir=data_dir, download=False)
    assert {k: len(v) for k, v in frames.items()} == {
        "train": 462_847,
        "valid": 43_264,
        "test": 111_179,
    }
    # JCA re-indexed users and movies 1.. by ascending original id, as compact() orders them.
    ours = np.unique((jca.users + 1) * 10_000 + jca.items + 1)
    union = pd.concat([frames["train"], frames["test"]])
    theirs = np.unique(union["user"].to_numpy() * 10_000 + union["item"].to_numpy())
    assert np.array_equal(ours, theirs)


def _jca_files(folder: Path, item: str, ids: list[str]) -> None:
    """A tiny JCA-layout split: vali ⊂ train, test disjoint; ids written as given."""
    u1, u2, i1, i2, i3 = ids
    _put(folder, "train.csv", f"userId,{item}\n{u1},{i1}\n{u1},{i2}\n{u2},{i1}\n{u2},{i3}\n")
    _put(folder, "vali.csv", f"userId,{item}\n{u1},{i2}\n")
    _put(folder, "test.csv", f"userId,{item}\n{u1},{i3}\n{u2},{i2}\n")


@pytest.mark.parametrize(
    ("name", "ids"),
    [("jca-yelp", ["1", "2", "1", "2", "3"]), ("jca-games", ["1.0", "2.0", "1.0", "2.0", "3.0"])],
)
def test_jca_yelp_and_games_read_the_authors_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, ids: list[str]
) -> None:
    spec = DATASETS[name]
    folder = "yelp" if name == "jca-yelp" else "VideoGame"
    assert spec.fixed_split and spec.valid_in_train
    assert [f.url.rsplit("/", 2)[-2:] for f in spec.files] == [
        [folder, "train.csv"], [folder, "vali.csv"], [folder, "test.csv"]
    ]  # fmt: skip
    assert all(f.known_hash.startswith("sha256:") for f in spec.files)
    _jca_files(tmp_path / name, "itemId", ids)
    _pin(monkeypatch, name, tmp_path / name)
    frames = load_split_files(name, data_dir=tmp_path, download=False)
    assert frames["train"]["user"].dtype == np.int64
    assert frames["test"].to_numpy().tolist() == [[1, 3], [2, 2]]
    assert len(load_frame(name, data_dir=tmp_path)) == 6  # vali ⊂ train: not twice


def test_jca_games_refuses_a_non_integral_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _jca_files(tmp_path / "jca-games", "itemId", ["1.0", "2.0", "1.0", "2.5", "3.0"])
    _pin(monkeypatch, "jca-games", tmp_path / "jca-games")
    with pytest.raises(ValueError, match=r"train.csv, line 3: item id 2.5 is not an integer"):
        load_split_files("jca-games", data_dir=tmp_path, download=False)


# --------------------------------------------------------------------------- local checksums
def test_pinned_local_files_are_hashed_once(
    tmp_path: Path, _isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "jca-ml-1m"
    _jca_files(folder, "movieId", ["1", "2", "1", "2", "3"])
    _pin(monkeypatch, "jca-ml-1m", folder)
    calls = []
    real = _fetch.pooch.file_hash

    def counting(path: str, alg: str = "sha256") -> str:
        calls.append(Path(path).name)
        return real(path, alg=alg)

    monkeypatch.setattr(_fetch.pooch, "file_hash", counting)
    load_split_files("jca-ml-1m", data_dir=tmp_path, download=False)
    assert sorted(calls) == ["test.csv", "train.csv", "vali.csv"]
    assert (_isolated / "file-hashes.json").is_file()  # under $NCFLAB_CACHE_DIR
    load_split_files("jca-ml-1m", data_dir=tmp_path, download=False)
    assert len(calls) == 3  # cached by (path, size, mtime_ns)
    test = folder / "test.csv"
    before = test.stat().st_mtime_ns
    test.write_text(test.read_text().replace("2,2", "2,1"))  # same size, new content
    os.utime(test, ns=(before + 10**9, before + 10**9))  # a coarse clock may not tick
    with pytest.raises(DatasetNotFoundError) as info:
        load_split_files("jca-ml-1m", data_dir=tmp_path, download=False)
    msg = str(info.value)
    expected = DATASETS["jca-ml-1m"].files[2].known_hash.split(":")[1]
    for part in (str(test), "not the published test.csv", expected, real(str(test)), "delete"):
        assert part in msg
    assert calls.count("test.csv") == 2


def test_unpacked_file_of_a_pinned_archive_is_used_unchecked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _put(tmp_path / "ml-1m", "ratings.dat", "1::2::3::4\n")  # ml-1m pins only its zip
    with caplog.at_level(logging.DEBUG, logger="ncflab.data._fetch"):
        assert len(load_frame("ml-1m", data_dir=tmp_path, download=False)) == 1
    assert "no checksum of the file itself is pinned" in caplog.text
    assert all(r.levelno == logging.DEBUG for r in caplog.records if "checksum" in r.message)


def test_a_damaged_hash_cache_only_costs_a_rehash(tmp_path: Path, _isolated: Path) -> None:
    path = _put(tmp_path, "x.bin", "data")
    _isolated.mkdir(parents=True, exist_ok=True)
    (_isolated / "file-hashes.json").write_text("{not json")
    digest = _fetch.file_digest(path, "sha256")
    assert digest == _fetch.pooch.file_hash(str(path))
    assert _fetch.file_digest(path, "md5") == _fetch.pooch.file_hash(str(path), alg="md5")
