from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ncflab.data.readers import (
    DataFormatError,
    read_amazon,
    read_jca,
    read_movielens,
    read_ncf_negatives,
    read_ncf_rating,
    read_table,
)
from ncflab.data.splits import split_from_frames
from ncflab.data.user_files import read_negatives_file, read_split_files, read_user_file


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------ formats
def test_movielens_formats_give_the_same_tidy_frame(tmp_path: Path) -> None:
    rows = [(1, 10, 4.0, 100), (2, 20, 3.5, 200)]
    files = [
        _write(tmp_path, "u.data", "".join(f"{u}\t{i}\t{r:g}\t{t}\n" for u, i, r, t in rows)),
        _write(tmp_path, "ratings.dat", "".join(f"{u}::{i}::{r:g}::{t}\n" for u, i, r, t in rows)),
        _write(
            tmp_path,
            "ratings.csv",
            "userId,movieId,rating,timestamp\n"
            + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows),
        ),
    ]
    for path in files:
        frame = read_movielens(path)
        assert list(frame.columns) == ["user", "item", "rating", "timestamp"]
        assert frame["user"].dtype == np.int64 and frame["item"].dtype == np.int64
        assert frame["rating"].dtype == np.float32 and frame["timestamp"].dtype == np.int64
        assert frame.to_numpy().tolist() == [list(r) for r in rows]
    # a directory is searched for the ratings file
    assert len(read_movielens(tmp_path)) == 2


def test_gzipped_double_colon_file(tmp_path: Path) -> None:
    path = tmp_path / "ratings.dat.gz"
    path.write_bytes(gzip.compress(b"1::2::5::9\n3::4::1::8\n"))
    assert read_movielens(path)["item"].tolist() == [2, 4]


def test_amazon_csv_keeps_string_ids_and_pruned_file_keeps_ints(tmp_path: Path) -> None:
    csv = _write(tmp_path, "ratings_X.csv", "A1,0001234567,5.0,100\nA2,B0001,4.0,200\n")
    frame = read_amazon(csv)
    assert frame["item"].tolist() == ["0001234567", "B0001"]  # leading zeros survive
    assert frame["rating"].tolist() == [5.0, 4.0]
    pruned = _write(tmp_path, "pruned.txt", "0 0 5.0 1158019200\n1 0 3.0 959385600\n")
    frame = read_amazon(pruned)
    assert frame["user"].dtype == np.int64 and frame["timestamp"].tolist()[1] == 959385600


def test_ncf_files(tmp_path: Path) -> None:
    rating = _write(tmp_path, "x.test.rating", "0\t25\t5\t978824351\n1\t133\t3\t978300174\n")
    assert read_ncf_rating(rating)["item"].tolist() == [25, 133]
    neg = _write(tmp_path, "x.test.negative", "(0,25)\t1\t2\t3\n(1,133)\t4\t5\t6\n")
    frame = read_ncf_negatives(neg)
    assert list(frame.columns) == ["user", "item", "neg_0", "neg_1", "neg_2"]
    assert frame.to_numpy().tolist() == [[0, 25, 1, 2, 3], [1, 133, 4, 5, 6]]


def test_read_table_mapping_separator_and_parquet(tmp_path: Path) -> None:
    csv = _write(tmp_path, "t.csv", "userId,movieId,extra\n1,7,x\n2,8,y\n")
    frame = read_table(csv, columns={"user": "userId", "item": "movieId"})
    assert list(frame.columns) == ["user", "item"] and frame["item"].tolist() == [7, 8]
    tsv = _write(tmp_path, "t.txt", "user\titem\trating\n1\t7\t2.5\n")
    assert read_table(tsv)["rating"].tolist() == [2.5]
    headless = _write(tmp_path, "h.txt", "5;9\n6;9\n")
    frame = read_table(headless, columns={"user": "0", "item": "1"}, header=False)
    assert frame["user"].tolist() == [5, 6]
    pq = tmp_path / "t.parquet"
    pd.DataFrame({"u": ["a", "b"], "i": [1, 2], "timestamp": [3, 4]}).to_parquet(pq)
    frame = read_table(pq, columns={"user": "u", "item": "i", "timestamp": "timestamp"})
    assert frame["user"].tolist() == ["a", "b"] and frame["timestamp"].dtype == np.int64


def test_blank_lines_are_skipped_and_ids_stay_integers(tmp_path: Path) -> None:
    path = _write(tmp_path, "ratings.dat", "1::2::3::4\n\n1::3::3::5\n")
    frame = read_movielens(path)
    assert frame["user"].dtype == np.int64 and frame["item"].tolist() == [2, 3]


# ------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("name", "text", "pattern"),
    [
        ("ratings.dat", "1::2::3::4\n1::2::3::4::5\n", r"line 2 has 5 fields, expected 4"),
        ("ratings.dat", "1::2::3::4\n1::2::3\n", r"line 2: missing field"),
        ("ratings.dat", "1::2::3::4\n1::2::x::4\n", r"line 2: rating 'x' is not a number"),
        ("ratings.dat", "1::2::3::4\n1::2::3::4.5\n", r"line 2: timestamp 4.5 is not an integer"),
        ("ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n1,2,,4\n", r"line 3: missing"),
        ("ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n1,2,bad,4\n", r"line 3: rat"),
        ("ratings.dat", "", r"is empty"),
        ("ratings.dat", "\n\n", r"is empty"),
        ("u.data", "1\t2\t3\n", r"line 1: 3 fields, expected 4"),
    ],
)
def test_reader_errors_name_file_line_and_value(
    tmp_path: Path, name: str, text: str, pattern: str
) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(DataFormatError, match=pattern) as info:
        read_movielens(path)
    assert str(path) in str(info.value)


def test_other_reader_errors(tmp_path: Path) -> None:
    neg = _write(tmp_path, "x.test.negative", "(0,25)\t1\t2\n0,26\t3\t4\n")
    with pytest.raises(DataFormatError, match=r"line 2: first field '0,26'"):
        read_ncf_negatives(neg)
    neg = _write(tmp_path, "y.test.negative", "(0,25)\t1\t2\n(1,26)\t3\tz\n")
    with pytest.raises(DataFormatError, match=r"line 2: negative item id 'z'"):
        read_ncf_negatives(neg)
    csv = _write(tmp_path, "t.csv", "userId,movieId\n1,2\n")
    with pytest.raises(DataFormatError, match=r"missing column\(s\) \['uid'\].*userId"):
        read_table(csv, columns={"user": "uid", "item": "movieId"})
    with pytest.raises(DataFormatError, match=r"missing column\(s\) \['user', 'item'\]"):
        read_table(csv)
    with pytest.raises(ValueError, match="unknown target column"):
        read_table(csv, columns={"user": "userId", "item": "movieId", "score": "x"})
    with pytest.raises(FileNotFoundError, match="no such data file"):
        read_ncf_rating(tmp_path / "absent.rating")


# --------------------------------------------------------------------------------- user files
def test_user_file_formats_give_the_same_frame(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"user": [3, 1], "item": [10, 20], "rating": [4.5, 1.0], "timestamp": [7, 8]}
    )
    csv = tmp_path / "r.csv"
    frame.to_csv(csv, index=False)
    tsv_gz = tmp_path / "r.tsv.gz"
    frame.to_csv(tsv_gz, sep="\t", index=False)
    tab = _write(tmp_path, "r.tab", frame.to_csv(sep="\t", index=False))
    txt = _write(tmp_path, "r.txt", frame.to_csv(sep=";", index=False))
    pq = tmp_path / "r.parquet"
    frame.to_parquet(pq)
    for path, sep in ((csv, None), (tsv_gz, None), (tab, None), (txt, ";"), (pq, None)):
        got = read_user_file(path, sep=sep)
        assert got["user"].dtype == np.int64 and got["rating"].dtype == np.float32
        assert got.astype({"rating": float}).equals(frame), path


def test_user_file_column_names_and_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.csv", "UserId,movie_id,stars,timestamp\n1,2,5,9\n")
    got = read_user_file(path)  # aliases, case-insensitive; "stars" is not a rating name
    assert list(got.columns) == ["user", "item", "timestamp"]
    got = read_user_file(path, columns={"user": "UserId", "item": "movie_id", "rating": "stars"})
    # The mapped roles, and the unmapped ones found by name (timestamp).
    assert list(got.columns) == ["user", "item", "rating", "timestamp"]
    both = _write(tmp_path, "b.csv", "user,userId,item\n1,2,3\n")
    with pytest.raises(DataFormatError, match=r"columns \['user', 'userId'\] could each be"):
        read_user_file(both)
    assert read_user_file(both, columns={"user": "userId", "item": "item"})["user"].tolist() == [2]
    none = _write(tmp_path, "c.csv", "a,b\n1,2\n")
    with pytest.raises(DataFormatError, match=r"no column is the user column.*columns="):
        read_user_file(none)
    headless = _write(tmp_path, "d.csv", "1,2\n3,4\n")
    with pytest.raises(DataFormatError, match="looks like data, not column names"):
        read_user_file(headless)


def test_user_file_ids_are_kept_as_written(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.csv", "user,item\n1,007\n2,8\n")
    got = read_user_file(path)
    assert got["user"].dtype == np.int64 and got["item"].tolist() == ["007", "8"]
    path = _write(tmp_path, "b.csv", "user,item\n u1 ,1.0\n")
    assert read_user_file(path).iloc[0].tolist() == [" u1 ", "1.0"]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("user,item,rating\n1,2,3\n1,,4\n", r"line 3: missing field\(s\) \['item'\]"),
        ("user,item,rating\n1,2,3\n1,2,good\n", r"line 3: rating 'good' is not a number"),
        ("user,item,timestamp\n1,2,3.5\n", r"line 2: timestamp 3.5 is not an integer"),
        ("user,item\n", r"is empty"),
        ("", r"is empty"),
        ("user,item\n1,2,3\n", r"line 2: 3 fields, but the header names 2"),
        ("user,item\n1,2\n1,2,3\n", r"line 3 has 3 fields, expected 2"),
    ],
)
def test_user_file_errors_name_file_line_and_value(tmp_path: Path, text: str, pattern: str) -> None:
    path = _write(tmp_path, "u.csv", text)
    with pytest.raises(DataFormatError, match=pattern) as info:
        read_user_file(path)
    assert str(path) in str(info.value)


def test_user_file_format_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"extension '.dat'.*pass sep"):
        read_user_file(_write(tmp_path, "r.dat", "user,item\n1,2\n"))
    pq = tmp_path / "r.parquet"
    pd.DataFrame({"user": [1.0, np.nan], "item": [1, 2]}).to_parquet(pq)
    with pytest.raises(DataFormatError, match=r"line 2: missing field"):
        read_user_file(pq)
    with pytest.raises(ValueError, match="sep=',' applies to text files"):
        read_user_file(pq, sep=",")
    with pytest.raises(FileNotFoundError, match="no such data file"):
        read_user_file(tmp_path / "absent.csv")


def test_negatives_files_in_three_layouts(tmp_path: Path) -> None:
    ncf = _write(tmp_path, "x.test.negative", "(1,2)\t3\t4\n(5,6)\t7\t8\n")
    wide = _write(tmp_path, "n.csv", "user,item,a,b\n1,2,3,4\n5,6,7,8\n")
    long = _write(tmp_path, "l.tsv", "userId\titemId\n1\t3\n1\t4\n")
    want = [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert read_negatives_file(ncf).to_numpy().tolist() == want
    assert read_negatives_file(wide).to_numpy().tolist() == want
    assert list(read_negatives_file(wide).columns) == ["user", "item", "neg_0", "neg_1"]
    assert read_negatives_file(long).to_numpy().tolist() == [[1, 3], [1, 4]]
    no_item = _write(tmp_path, "w.csv", "uid,n0,n1\n1,3,x9\n")
    got = read_negatives_file(no_item, columns={"user": "uid", "item": "iid"})
    assert got.iloc[0].tolist() == [1, "3", "x9"]  # one text id keeps every negative as text
    ragged = _write(tmp_path, "r.csv", "user,n0,n1\n1,3,4\n2,5,\n")
    with pytest.raises(DataFormatError, match=r"line 3: missing field"):
        read_negatives_file(ragged)


def test_read_split_files_feeds_split_from_frames(tmp_path: Path) -> None:
    train = _write(tmp_path, "train.csv", "user,item,timestamp\n1,10,1\n1,11,2\n2,10,3\n")
    test = _write(tmp_path, "test.csv", "user,item,timestamp\n1,12,4\n2,13,5\n")
    negs = _write(tmp_path, "neg.test.negative", "(1,12)\t14\t15\n(2,13)\t11\t14\n")
    frames = read_split_files({"train": train, "test": test, "negatives": negs})
    assert sorted(frames) == ["negatives", "test", "train"]
    split = split_from_frames(frames["train"], frames["test"], negatives=frames["negatives"])
    assert split.negatives.shape == (2, 2) and split.n_items == 6
    with pytest.raises(ValueError, match=r"unknown \['vali'\], missing \['test'\]"):
        read_split_files({"train": train, "vali": test})
    odd = _write(tmp_path, "odd.csv", "user,item\n1,u12\n")
    with pytest.raises(ValueError, match=r"item ids are integers in \['train'\] but not in test"):
        read_split_files({"train": train, "test": odd})


def test_jca_reader_reads_float_ids_as_integers(tmp_path: Path) -> None:
    path = _write(tmp_path, "train.csv", "userId,itemId\n1.0,2.0\n3.0,4.0\n")
    got = read_jca(path, item_column="itemId")
    assert got["user"].dtype == np.int64 and got.to_numpy().tolist() == [[1, 2], [3, 4]]
    bad = _write(tmp_path, "test.csv", "userId,itemId\n1.0,2.0\n3.0,4.5\n")
    with pytest.raises(DataFormatError, match=r"test.csv, line 3: item id 4.5 is not an integer"):
        read_jca(bad, item_column="itemId")
    with pytest.raises(DataFormatError, match=r"missing column\(s\) \['movieId'\]"):
        read_jca(path)
