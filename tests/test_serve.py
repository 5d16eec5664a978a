"""``ncflab serve``: the HTTP service over a saved run answers what the model answers (known
users, fold-in, batches, similar items), refuses every bad request with a 4xx and a JSON
``detail``, and never answers 5xx to a client's mistake."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")

from conftest import write_ratings_csv  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from ncflab import runs  # noqa: E402
from ncflab.experiments.run import load_run  # noqa: E402
from ncflab.models import MODELS  # noqa: E402
from ncflab.serving.app import ENV, create_app, create_from_env  # noqa: E402
from ncflab.serving.service import Limits  # noqa: E402

K = 10
SMALL = Limits(max_k=50, max_batch=5, max_body=4000)  # limits a test can reach cheaply


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished EASE run on 60 users × 200 items (integer ids, as the ``ratings_csv``
    fixture's data), trained once for the module."""
    from typer.testing import CliRunner

    from ncflab.cli import app

    folder = tmp_path_factory.mktemp("serve")
    data = write_ratings_csv(folder / "ratings.csv")
    out = folder / "run"
    args = ["train", "-m", "ease", "-d", str(data), "-p", "jncf", "-o", str(out)]
    res = CliRunner().invoke(app, [*args, "--set", "params.l2=50"])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def loaded(run: Path) -> tuple:
    config, split, model = load_run(run)
    return config, split, model, runs.read_metrics(run)


@pytest.fixture(scope="module")
def client(loaded: tuple) -> TestClient:
    return TestClient(create_app(*loaded, limits=SMALL))


def _client_for(loaded: tuple, model: object) -> TestClient:
    """The service over another model fitted on the same split."""
    config, split, _, metrics = loaded
    return TestClient(create_app(config, split, model, metrics, limits=SMALL))


def _ok(res) -> dict:  # noqa: ANN001
    assert res.status_code == 200, res.text
    return res.json()


# ------------------------------------------------------------------------------ answers
def test_user_recommendations_equal_model_recommend(client, loaded) -> None:
    _, split, model, _ = loaded
    known = split.known_positives()
    users = [0, 7, 33, 59]
    items, scores = model.recommend(np.array(users), K, exclude=known)
    for row, u in enumerate(users):
        uid = int(split.train.user_ids[u])
        got = _ok(client.get(f"/users/{uid}/recommendations", params={"k": K}))
        assert got["user"] == uid and got["k"] == K
        assert [x["rank"] for x in got["items"]] == list(range(1, K + 1))
        assert [x["item"] for x in got["items"]] == split.train.item_ids[items[row]].tolist()
        assert [x["score"] for x in got["items"]] == scores[row].astype(float).tolist()
        index = split.train.item_index([x["item"] for x in got["items"]])
        assert known[u, index].sum() == 0  # never an item the user has


def test_k_above_the_unseen_items_gives_them_all_without_padding(client, loaded) -> None:
    _, split, _, _ = loaded
    known = split.known_positives()
    uid = int(split.train.user_ids[3])
    got = _ok(client.get(f"/users/{uid}/recommendations", params={"k": 50}))
    assert len(got["items"]) == 50  # 200 items, about 20 known: no -1 padding in any case
    assert all(x["item"] > 0 for x in got["items"])
    assert known[3, split.train.item_index([x["item"] for x in got["items"]])].sum() == 0


def test_fold_in_of_a_trained_users_row_scores_as_that_user(client, loaded) -> None:
    # EASE scores a user by their row alone (x_u B), so the same row folded in is exact.
    _, split, model, _ = loaded
    train = split.train.csr("binary")
    for u in (2, 40):
        given = split.train.item_ids[train[u].indices].tolist()
        got = _ok(client.post("/recommendations", json={"items": given, "k": K}))
        items, scores = model.recommend(np.array([u]), K, exclude=train)
        assert [x["item"] for x in got["items"]] == split.train.item_ids[items[0]].tolist()
        np.testing.assert_allclose([x["score"] for x in got["items"]], scores[0], atol=1e-5)
        assert not set(given) & {x["item"] for x in got["items"]}  # given items excluded


def test_fold_in_with_ratings_answers(client, loaded) -> None:
    _, split, _, _ = loaded
    given = split.train.item_ids[:3].tolist()
    body = {"items": given, "ratings": [5, 3.5, 1], "k": 4}
    got = _ok(client.post("/recommendations", json=body))
    assert len(got["items"]) == 4 and not set(given) & {x["item"] for x in got["items"]}


def test_batch_equals_individual_answers(client, loaded) -> None:
    _, split, _, _ = loaded
    ids = split.train.user_ids[[5, 1, 44]].tolist()
    got = _ok(client.post("/recommendations/batch", json={"users": ids, "k": 7}))
    assert [r["user"] for r in got["results"]] == ids
    for uid, result in zip(ids, got["results"], strict=True):
        assert result == _ok(client.get(f"/users/{uid}/recommendations", params={"k": 7}))


def test_text_ids_are_read_as_the_datas_ids(client, loaded) -> None:
    _, split, _, _ = loaded
    uid = int(split.train.user_ids[0])
    as_text = _ok(client.post("/recommendations/batch", json={"users": [str(uid)]}))
    assert as_text["results"][0] == _ok(client.get(f"/users/{uid}/recommendations"))


def test_similar_items_of_ease_are_its_weights_sorted(client, loaded) -> None:
    _, split, model, _ = loaded
    for i in (0, 99):
        iid = int(split.train.item_ids[i])
        got = _ok(client.get(f"/items/{iid}/similar", params={"k": K}))
        assert got["item"] == iid and len(got["items"]) == K
        listed = [x["item"] for x in got["items"]]
        scores = [x["score"] for x in got["items"]]
        assert iid not in listed and scores == sorted(scores, reverse=True)
        column = model.B_[:, i]
        np.testing.assert_allclose(scores, column[split.train.item_index(listed)], rtol=1e-6)
        others = np.delete(column, i)
        assert scores[0] == pytest.approx(float(others.max()))


@pytest.mark.parametrize("name", ["itemknn", "ials"])
def test_similar_items_of_other_models(loaded, name: str) -> None:
    _, split, _, _ = loaded
    params = {"ials": {"factors": 4, "epochs": 2}}.get(name, {})
    model = MODELS[name](**params).fit(split.train)
    iid = int(split.train.item_ids[10])
    got = _ok(_client_for(loaded, model).get(f"/items/{iid}/similar", params={"k": 5}))
    scores = [x["score"] for x in got["items"]]
    assert 0 < len(scores) <= 5 and iid not in [x["item"] for x in got["items"]]
    assert scores == sorted(scores, reverse=True)
    if name == "ials":
        assert all(-1 - 1e-6 <= s <= 1 + 1e-6 for s in scores)  # cosines


def test_model_reports_the_runs_record(client, loaded, run) -> None:
    config, _, model, metrics = loaded
    got = _ok(client.get("/model"))
    assert got["split_fingerprint"] == runs.recorded_fingerprint(run)
    assert got["split_fingerprint"] == metrics["fingerprint"]["split"]
    assert got["name"] == "ease" and got["protocol"] == "jncf"
    assert got["hyperparameters"]["l2"] == 50
    assert got["test"] == pytest.approx(metrics["test"])
    assert got["provenance"]["ncflab"] == metrics["provenance"]["ncflab"]
    assert got["n_items"] == model.n_items_ and got["item_similarity"] is True
    assert got["fold_in"] is True


def test_health_and_openapi_list_the_endpoints(client) -> None:
    assert _ok(client.get("/health")) == {"status": "ok"}
    paths = _ok(client.get("/openapi.json"))["paths"]
    for path in (
        "/health",
        "/model",
        "/users/{user_id}/recommendations",
        "/recommendations",
        "/recommendations/batch",
        "/items/{item_id}/similar",
    ):
        assert path in paths


# --------------------------------------------------------------------------- bad requests
def _chunks(size: int):  # noqa: ANN202
    """A body without Content-Length (sent chunked)."""
    for _ in range(size // 1000):
        yield b" " * 1000


BAD = [
    # (label, method, path, body or None, expected status, text the detail holds)
    ("unknown user", "GET", "/users/999999/recommendations", None, 404, "999999"),
    ("user id not a number", "GET", "/users/abc/recommendations", None, 404, "abc"),
    ("k=0", "GET", "/users/1/recommendations?k=0", None, 422, "k: Input should be greater than or"),
    ("k above max_k", "GET", "/users/1/recommendations?k=51", None, 422, "or equal to 50"),
    ("k not a number", "GET", "/users/1/recommendations?k=abc", None, 422, "integer"),
    ("unknown item", "POST", "/recommendations", {"items": [1, 5000]}, 404, "5000"),
    ("many unknown items", "POST", "/recommendations",
     {"items": list(range(9001, 9013))}, 404, "12 unknown item ids"),
    ("duplicate items", "POST", "/recommendations", {"items": [1, 2, 1]}, 422, "more than once"),
    ("ratings length", "POST", "/recommendations",
     {"items": [1, 2], "ratings": [5.0]}, 422, "one value per item"),
    ("negative rating", "POST", "/recommendations",
     {"items": [1, 2], "ratings": [5.0, -1]}, 422, "ratings.1: Input should be greater than 0"),
    ("rating beyond float32", "POST", "/recommendations",
     {"items": [1, 2], "ratings": [5.0, 1e39]}, 422, "ratings.1: Input should be less"),
    ("no items", "POST", "/recommendations",
     {"items": []}, 422, "items: List should have at least"),
    ("fold-in k=0", "POST", "/recommendations",
     {"items": [1], "k": 0}, 422, "k: Input should be greater than or"),
    ("items not a list", "POST", "/recommendations", {"items": "1"}, 422, "list"),
    ("item a float", "POST", "/recommendations", {"items": [1.5]}, 422, "int"),
    ("item a boolean", "POST", "/recommendations", {"items": [True]}, 422, "int"),
    ("k a word", "POST", "/recommendations", {"items": [1], "k": "many"}, 422, "integer"),
    ("unknown field", "POST", "/recommendations",
     {"items": [1], "rating": [1]}, 422, "rating: Extra inputs"),
    ("malformed JSON", "POST", "/recommendations", b'{"items": [1,', 422, "JSON"),
    ("oversized body", "POST", "/recommendations",
     {"items": list(range(2000))}, 413, "limit of 4000 bytes"),
    ("oversized chunked body", "POST", "/recommendations", _chunks, 413, "limit of 4000"),
    ("unknown batch users", "POST", "/recommendations/batch",
     {"users": [1, 999998, 999999]}, 404, "2 unknown user ids"),
    ("repeated batch users", "POST", "/recommendations/batch",
     {"users": [1, 1]}, 422, "more than once"),
    ("no batch users", "POST", "/recommendations/batch",
     {"users": []}, 422, "users: List should have"),
    ("too many batch users", "POST", "/recommendations/batch",
     {"users": [1, 2, 3, 4, 5, 6]}, 422, "at most 5 items"),
    ("batch k above max_k", "POST", "/recommendations/batch",
     {"users": [1], "k": 51}, 422, "less than or equal to 50"),
    ("unknown similar item", "GET", "/items/77777/similar", None, 404, "77777"),
    ("similar k=0", "GET", "/items/1/similar?k=0", None, 422, "greater than or equal to 1"),
    ("unknown route", "GET", "/nothing", None, 404, "Not Found"),
    ("wrong method", "GET", "/recommendations", None, 405, "Method Not Allowed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "text"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_requests_get_a_4xx_with_a_json_detail(
    client, method: str, path: str, body: object, status: int, text: str
) -> None:
    if body is None:
        res = client.request(method, path)
    elif isinstance(body, bytes):
        res = client.request(
            method, path, content=body, headers={"content-type": "application/json"}
        )
    elif callable(body):
        res = client.request(method, path, content=body(6000))
    else:
        res = client.request(method, path, json=body)
    assert res.status_code == status, res.text
    detail = res.json()["detail"]
    assert text in (detail if isinstance(detail, str) else json.dumps(detail)), detail


def test_a_model_that_cannot_fold_in_or_compare_items_says_so(loaded) -> None:
    _, split, _, _ = loaded
    client = _client_for(loaded, MODELS["itempop"]().fit(split.train))
    iid = int(split.train.item_ids[0])
    res = client.post("/recommendations", json={"items": [iid]})
    assert res.status_code == 422 and "without retraining" in res.json()["detail"]
    res = client.get(f"/items/{iid}/similar")
    assert res.status_code == 422 and "no item similarity" in res.json()["detail"]
    info = _ok(client.get("/model"))
    assert info["item_similarity"] is False and info["fold_in"] is False
    # Neither is offered in the schema, though both still answer with the reason.
    paths = _ok(client.get("/openapi.json"))["paths"]
    assert "/recommendations" not in paths and "/items/{item_id}/similar" not in paths
    uid = int(split.train.user_ids[0])
    assert len(_ok(client.get(f"/users/{uid}/recommendations"))["items"]) == K  # still serves


def test_an_unexpected_error_is_a_short_500(loaded, monkeypatch) -> None:
    config, split, model, metrics = loaded
    app = create_app(config, split, model, metrics)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.state.service.model, "recommend", broken)
    res = TestClient(app, raise_server_exceptions=False).get("/users/1/recommendations")
    assert res.status_code == 500
    assert "RuntimeError" in res.json()["detail"] and "secret" not in res.text


# -------------------------------------------------------------------------------- the verb
def test_serve_loads_the_run_and_starts_uvicorn(cli, run, monkeypatch) -> None:
    import uvicorn

    calls: list[tuple] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    for key in ENV.values():  # set then deleted: monkeypatch restores them after the test
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    res = cli("serve", run, "--port", 8123, "--max-k", 20)
    assert res.exit_code == 0, res.output
    app, kw = calls[-1]
    assert kw == {"host": "127.0.0.1", "port": 8123}
    res = TestClient(app).get("/users/1/recommendations?k=21")
    assert res.status_code == 422 and "less than or equal to 20" in res.json()["detail"]

    # Several workers: each imports the factory, which finds the run in the environment.
    res = cli("serve", run, "--workers", 2, "--max-k", 30)
    assert res.exit_code == 0, res.output
    target, kw = calls[-1]
    assert target == "ncflab.serving.app:create_from_env"
    assert kw["factory"] is True and kw["workers"] == 2
    with TestClient(create_from_env()) as worker:
        assert _ok(worker.get("/model"))["split_fingerprint"] == runs.recorded_fingerprint(run)
        assert worker.get("/users/1/recommendations?k=31").status_code == 422


def test_serve_refuses_a_folder_that_is_not_a_run(cli, tmp_path) -> None:
    for workers in (1, 2):
        res = cli("serve", tmp_path / "missing", "--workers", workers)
        assert res.exit_code == 2 and "does not exist" in res.output


def test_serve_with_workers_refuses_missing_data_before_starting_them(
    cli, tmp_path, monkeypatch
) -> None:
    import uvicorn

    data = write_ratings_csv(tmp_path / "ratings.csv")
    res = cli("train", "-m", "ease", "-d", data, "-p", "jncf", "-o", tmp_path / "run")
    assert res.exit_code == 0, res.output
    data.unlink()  # a worker could not load the run now
    calls: list[tuple] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    res = cli("serve", tmp_path / "run", "--workers", 2)
    assert res.exit_code == 2 and "ratings.csv" in res.output and not calls, res.output
