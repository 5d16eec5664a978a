"""Named datasets: the table of their files, sources and checksums, and loading them.

Finding files (``data_dir``, ``$NCFLAB_DATA_DIR``, the cache; ``<dir>/<dataset>/<file>``, and
``<dir>/<file>`` only for names that identify one dataset), unpacking archives and checked
downloads live in :mod:`ncflab.data._fetch`; ``DatasetNotFoundError`` and ``cache_dir`` are
re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ncflab.data._fetch import (
    DatasetNotFoundError,
    cache_dir,
    check_local,
    fetch,
    find,
    flat_names,
)
from ncflab.data.interactions import Interactions
from ncflab.data.readers import (
    read_amazon,
    read_jca,
    read_movielens,
    read_ncf_negatives,
    read_ncf_rating,
)

__all__ = [  # cache_dir, DatasetNotFoundError: re-exported from ncflab.data._fetch
    "DATASETS", "DataFile", "DatasetNotFoundError", "DatasetSpec", "cache_dir", "dataset_paths",
    "describe", "get_spec", "is_available", "load_dataset", "load_frame", "load_split_files",
]  # fmt: skip

Reader = Callable[[Path], pd.DataFrame]


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset.

    Attributes:
        role: "ratings" for a single-file dataset; "train" / "valid" / "test" / "negatives"
            for a fixed split.
        name: the file name looked for locally (and inside the archive's folder).
        reader: path → tidy frame (see :mod:`ncflab.data.readers`).
        url: direct download address when the dataset has no archive.
        known_hash: pinned ``"md5:…"`` / ``"sha256:…"`` of ``url``'s content, or None. A local
            copy found under the dataset's name is checked against it once (the result is
            cached by path, size and mtime; see :func:`ncflab.data._fetch.check_local`).
    """

    role: str
    name: str
    reader: Reader
    url: str | None = None
    known_hash: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: its files, where they come from, and how they are split.

    Attributes:
        archive_url / archive_hash / archive_dir: a zip holding the files in ``archive_dir``.
        fixed_split: the files are a published split (read with :func:`load_split_files`).
        valid_in_train: the published validation records are also in train (JCA).
        hash_note: why no checksum is pinned (empty when every download is verified).
    """

    name: str
    description: str
    files: tuple[DataFile, ...]
    archive_url: str | None = None
    archive_hash: str | None = None
    archive_dir: str = ""
    fixed_split: bool = False
    valid_in_train: bool = False
    hash_note: str = ""

    @property
    def archive_name(self) -> str | None:
        return None if self.archive_url is None else self.archive_url.rsplit("/", 1)[-1]


# ---------------------------------------------------------------------------- the dataset table
_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
# MD5s as GroupLens publishes them next to each zip (<zip>.md5), cross-checked in several
# independent public projects; ml-latest-small is regenerated over time, so it is not pinned.
_ML = {
    "ml-100k": ("u.data", "md5:0e33842e24a9c977be4e0107933c0723", "ml-100k",
                "MovieLens 100K: 100,000 ratings 1-5, 943 users x 1,682 movies (1997-98)"),
    "ml-1m": ("ratings.dat", "md5:c4d9eecfca2ab87c1945afe126590906", "ml-1m",
              "MovieLens 1M: 1,000,209 ratings 1-5, 6,040 users x 3,706 movies (2000-03)"),
    "ml-10m": ("ratings.dat", "md5:ce571fd55effeba0271552578f2648bd", "ml-10M100K",
               "MovieLens 10M: 10,000,054 half-star ratings, 69,878 users x 10,677 movies"),
    "ml-20m": ("ratings.csv", "md5:cd245b17a1ae2cc31bb14903e1204af3", "ml-20m",
               "MovieLens 20M: 20,000,263 half-star ratings, 138,493 users x 26,744 movies"),
    "ml-25m": ("ratings.csv", "md5:6b51fb2759a8657d3bfcbfc42b592ada", "ml-25m",
               "MovieLens 25M: 25,000,095 half-star ratings, 162,541 users x 59,047 movies"),
    "ml-latest-small": ("ratings.csv", None, "ml-latest-small",
                        "MovieLens latest-small (2018): 100,836 ratings, 610 users x 9,724 movies"),
}  # fmt: skip

_AMAZON_2014 = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles"
_AMAZON_CATEGORIES = {
    "amazon-books": "Books",
    "amazon-cds-vinyl": "CDs_and_Vinyl",
    "amazon-clothing": "Clothing_Shoes_and_Jewelry",
    "amazon-digital-music-full": "Digital_Music",
    "amazon-electronics": "Electronics",
    "amazon-home-kitchen": "Home_and_Kitchen",
    "amazon-kindle-store": "Kindle_Store",
    "amazon-movies-tv": "Movies_and_TV",
    "amazon-musical-instruments": "Musical_Instruments",
    "amazon-office-products": "Office_Products",
    "amazon-video-games": "Video_Games",
}
_DMF = (
    "https://raw.githubusercontent.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation/"
    "f5618c65573c5b220713775bdd56971663de9828/Conferences/IJCAI/DMF_original/data_www/"
)
_DMF_FILE = "Amazon_ratings_Digital_Music_pruned.txt"
_DMF_SHA256 = "sha256:db0a9f971d8106f179e57ad0087e6a524be38cc1bceed01ce31f9ca452ef6c8e"
_NCF = (
    "https://raw.githubusercontent.com/hexiangnan/neural_collaborative_filtering/"
    "4aab159e81c44b062c091bdaed0ab54ac632371f/Data/"
)
_JCA = (
    "https://raw.githubusercontent.com/Zziwei/Joint-Collaborative-Autoencoder/"
    "464226427d677a1f20f865e26bea30a42ec30367/data/"
)
_JCA_FILES = {"train": "train.csv", "valid": "vali.csv", "test": "test.csv"}
# name → (the authors' folder, item column, {role: sha256}, description). Item columns as the
# authors' data_preprocessor.py reads them (movieId for ml-1m, itemId for yelp and VideoGame).
_JCA_SPLITS = {
    "jca-ml-1m": ("ml-1m", "movieId", {
        "train": "552a0bab5bfe70d46a2fa77687247fbf1fe48f4b0d386e50b70f8d7fa9c41196",
        "valid": "05824a289b8460217d492565afded7fb0388840f0bc7c1fe91c0e34e8d67362a",
        "test": "32d03b546ca1d5f3ac51677d183f9c789e6b695ad4fc06e0953b1a052b35689b",
    }, "JCA's ML-1M split (Zhu et al. 2019): ratings > 3, 6,027 x 3,062, 80/20, vali in train"),
    "jca-yelp": ("yelp", "itemId", {
        "train": "b386f2c802f9016c33195778c7d107467517f6835c0063eb20c3aa35bf501a2d",
        "valid": "ad535c533bb65973148ecd45ce4a860c5bb01fc4016a73aab8e3f65945ee9efa",
        "test": "5ad6942ed1398ba5ff5e12714428c17546f73c739c71cae5f7a20d3a4c4be7aa",
    }, "JCA's Yelp split (Zhu et al. 2019, Table 2: 12,705 x 9,245), 80/20, vali in train; "
       "has duplicate rows and 4,109 test pairs also in train: choose overlap='clean'/'keep'"),
    "jca-games": ("VideoGame", "itemId", {
        "train": "268c243110745096557d34b51582bfa1e0f5272c9f7fcb0bde8fab6106613d7c",
        "valid": "f29207af2e7527ffe00d24fe7ba38fada1be34ff9233580ffc332ad2721e0b24",
        "test": "34aa38f6481504b9ba50973af6f846ea9c0470abb7b53d9f28ef36e8ea9e3d3d",
    }, "JCA's Amazon Video Games split (Zhu et al. 2019, Table 2: 19,056 x 9,073), 80/20, "
       "vali in train; ids written as floats (1.0), read as integers"),
}  # fmt: skip


def _jca(name: str) -> DatasetSpec:
    folder, item_column, sha256, description = _JCA_SPLITS[name]
    reader = partial(read_jca, item_column=item_column)
    files = tuple(
        DataFile(role, file, reader, f"{_JCA}{folder}/{file}", "sha256:" + sha256[role])
        for role, file in _JCA_FILES.items()
    )
    return DatasetSpec(name, description, files, fixed_split=True, valid_in_train=True)


def _movielens(name: str) -> DatasetSpec:
    file, md5, folder, description = _ML[name]
    note = "" if md5 else "GroupLens regenerates ml-latest-small; its md5 is at <zip>.md5"
    return DatasetSpec(
        name, description, (DataFile("ratings", file, read_movielens),),
        archive_url=f"{_GROUPLENS}/{name}.zip", archive_hash=md5, archive_dir=folder,
        hash_note=note,
    )  # fmt: skip


def _amazon(name: str, category: str) -> DatasetSpec:
    file = f"ratings_{category}.csv"
    return DatasetSpec(
        name,
        f"Amazon 2014 ratings-only file, {category} (McAuley et al.), unfiltered",
        (DataFile("ratings", file, read_amazon, f"{_AMAZON_2014}/{file}"),),
        hash_note="no checksum is published for the 2014 Amazon files",
    )


def _ncf(name: str, prefix: str, description: str) -> DatasetSpec:
    files = (
        DataFile("train", f"{prefix}.train.rating", read_ncf_rating),
        DataFile("test", f"{prefix}.test.rating", read_ncf_rating),
        DataFile("negatives", f"{prefix}.test.negative", read_ncf_negatives),
    )
    files = tuple(DataFile(f.role, f.name, f.reader, _NCF + f.name) for f in files)
    note = "no checksum is published for the NCF files"
    return DatasetSpec(name, description, files, fixed_split=True, hash_note=note)


DATASETS: dict[str, DatasetSpec] = {
    **{name: _movielens(name) for name in _ML},
    "amazon-digital-music": DatasetSpec(
        "amazon-digital-music",
        "Amazon Digital Music as pruned by DMF (Xue et al. 2017): 46,468 ratings, 844 x 18,813",
        (DataFile("ratings", _DMF_FILE, read_amazon, _DMF + _DMF_FILE, _DMF_SHA256),),
    ),
    **{name: _amazon(name, cat) for name, cat in _AMAZON_CATEGORIES.items()},
    "ncf-ml-1m": _ncf("ncf-ml-1m", "ml-1m", "NCF's ML-1M split (He et al. 2017): LOO, 99 negs"),
    "ncf-pinterest-20": _ncf(
        "ncf-pinterest-20", "pinterest-20", "NCF's Pinterest split (He et al. 2017): LOO, 99 negs"
    ),
    **{name: _jca(name) for name in _JCA_SPLITS},
}


# ---------------------------------------------------------------------------------- resolution
def get_spec(name: str) -> DatasetSpec:
    """The spec called ``name``; an unknown name raises ``KeyError`` listing the known ones."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {sorted(DATASETS)}")
    return DATASETS[name]


def _flat() -> frozenset[str]:
    # Computed per call: DATASETS is a plain dict that callers (and tests) may extend.
    return flat_names(DATASETS.values())


def is_available(name: str, data_dir: str | Path | None = None) -> bool:
    """Whether every file of ``name`` is present locally (no download is tried)."""
    spec, flat = get_spec(name), _flat()
    return all(find(spec, f.name, data_dir, flat) is not None for f in spec.files)


def dataset_paths(
    name: str, data_dir: str | Path | None = None, download: bool = True
) -> dict[str, Path]:
    """role → local path of every file of ``name``, unpacking or downloading what is missing.

    A file found locally whose own content is pinned (``DataFile.known_hash``) is checked
    against the pin once; the digest is cached by (path, size, mtime) under :func:`cache_dir`.

    Raises:
        KeyError: unknown name. DatasetNotFoundError: a file is missing and cannot be fetched,
            or a local file is not the published one (the message names both hashes).
    """
    spec, flat = get_spec(name), _flat()
    paths = {}
    for file in spec.files:
        found = find(spec, file.name, data_dir, flat)
        if found is None:
            paths[file.role] = fetch(spec, file, data_dir, download, flat)
        else:
            paths[file.role] = check_local(spec, file, found)
    return paths


# -------------------------------------------------------------------------------------- loading
def load_frame(
    name: str, data_dir: str | Path | None = None, download: bool = True
) -> pd.DataFrame:
    """The records of ``name`` as a tidy frame ``user, item[, rating, timestamp]`` (file ids).

    For a fixed-split dataset this is the union of its parts: train + test, plus valid when
    valid is not already inside train (JCA's ``vali.csv`` is), without the negatives.
    """
    spec = get_spec(name)
    if not spec.fixed_split:
        (file,) = spec.files
        return file.reader(dataset_paths(name, data_dir, download)[file.role])
    frames = load_split_files(name, data_dir, download)
    parts = ["train", "test"] + ([] if spec.valid_in_train else ["valid"])
    return pd.concat([frames[p] for p in parts if p in frames], ignore_index=True)


def load_dataset(
    name: str, data_dir: str | Path | None = None, download: bool = True
) -> Interactions:
    """The records of ``name`` as :class:`Interactions` (indices in sorted-id order)."""
    return Interactions.from_frame(load_frame(name, data_dir, download))


def load_split_files(
    name: str, data_dir: str | Path | None = None, download: bool = True
) -> dict[str, pd.DataFrame]:
    """The published parts of a fixed-split dataset, keyed "train", "test" and, where present,
    "valid" and "negatives" (NCF: the wide frame of :func:`read_ncf_negatives`, ``user``,
    ``item`` and ``neg_0…neg_98``), ready for ``splits.split_from_frames``.
    """
    spec = get_spec(name)
    if not spec.fixed_split:
        fixed = sorted(n for n, s in DATASETS.items() if s.fixed_split)
        raise ValueError(
            f"dataset {name!r} has no published split; use load_dataset() and a split "
            f"function, or one of the fixed-split datasets {fixed}"
        )
    paths = dataset_paths(name, data_dir, download)
    return {f.role: f.reader(paths[f.role]) for f in spec.files}


def describe(inter: Interactions) -> dict:
    """Summary statistics of some interactions (counts are of users/items with records).

    Returns:
        users, items, ratings (records), density (records / (users × items)),
        duplicate_pairs (pairs with > 1 record), duplicate_records (records beyond the first
        of their pair), min_user_records, min_item_records, rating_histogram ({value: count},
        or None without ratings), timestamp_min / timestamp_max (None without timestamps).
    """
    uc, ic = inter.user_counts(), inter.item_counts()
    users, items = int((uc > 0).sum()), int((ic > 0).sum())
    _, per_pair = np.unique(inter.users * inter.n_items + inter.items, return_counts=True)
    out = {
        "users": users,
        "items": items,
        "ratings": len(inter),
        "density": len(inter) / max(1, users * items),
        "duplicate_pairs": int((per_pair > 1).sum()),
        "duplicate_records": int(len(inter) - len(per_pair)),
        "min_user_records": int(uc[uc > 0].min()) if users else 0,
        "min_item_records": int(ic[ic > 0].min()) if items else 0,
        "rating_histogram": None,
        "timestamp_min": None,
        "timestamp_max": None,
    }
    if inter.ratings is not None:
        values, counts = np.unique(inter.ratings, return_counts=True)
        out["rating_histogram"] = {float(v): int(c) for v, c in zip(values, counts, strict=True)}
    if inter.timestamps is not None and len(inter):
        out["timestamp_min"] = int(inter.timestamps.min())
        out["timestamp_max"] = int(inter.timestamps.max())
    return out
