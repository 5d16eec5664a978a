"""The HTTP service of ``ncflab serve``: a FastAPI app over one loaded run.

``create_app`` builds the app from objects already loaded (tests build it without files);
``load_app`` loads a run folder with its integrity checks (model files' SHA-256, split
fingerprint) and builds it; ``create_from_env`` is the factory uvicorn imports in each worker
process when there are several (a worker cannot be handed a Python object, so the run's path
and options travel in environment variables).

Error rules: an unknown id is 404 naming it, a value out of range or a request the model cannot
answer 422 with the reason, a body over the size limit 413, malformed JSON or a wrong type 422;
every error body is JSON with a ``detail`` sentence (a request the schema refuses adds
``errors``, one entry per field). An unexpected error is a 500 with a short message, and the
traceback goes to the server log only.

The limits a request must respect (k in 1..max_k, at most max_batch users, at least one item,
no item twice, ratings > 0) are in the OpenAPI schema as well as in the service, so that a
client generated from the schema does not send what is refused. One rule JSON Schema cannot
state is said in the field's description: as many ratings as items.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations at run time,
# and the bodies and k are types built inside ``create_app`` (they carry its limits).
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from ncflab.serving.service import Limits, RecommendationService, ServiceError, describe

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ncflab.config import RunConfig
    from ncflab.data.splits import Split
    from ncflab.models.base import Recommender

__all__ = ["ENV", "create_app", "create_from_env", "load_app"]

# The environment variables ``create_from_env`` reads (``ncflab serve`` sets them).
ENV = {
    "run": "NCFLAB_SERVE_RUN",
    "data_dir": "NCFLAB_SERVE_DATA_DIR",
    "max_k": "NCFLAB_SERVE_MAX_K",
    "threads": "NCFLAB_SERVE_THREADS",
}

# An original id as JSON gives it: strict, so that true, 1.5 or null is refused, not coerced.
Id = StrictInt | StrictStr


# ------------------------------------------------------------------------------ the models
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored


# A round bound just under float32's largest value (3.40282e38): a larger rating would be inf
# inside the model.
_RATING_MAX = 3.4e38


def request_models(
    limits: Limits, some_users: list[Any], some_items: list[Any]
) -> tuple[type[BaseModel], type[BaseModel]]:
    """The bodies of ``POST /recommendations`` and ``POST /recommendations/batch``, with the
    limits of this service in their schema and examples made of the run's own ids
    (``some_users``, ``some_items``): a client, or a schema-driven test, then has a request
    that is answered."""
    k_field = Field(10, ge=1, le=limits.max_k, description="How many items to return.")
    unique = {"uniqueItems": True}

    class NewUserRequest(_Body):
        model_config = ConfigDict(json_schema_extra={"examples": [{"items": some_items, "k": 10}]})
        items: list[Id] = Field(
            min_length=1, json_schema_extra=unique, description="The new user's item ids."
        )
        ratings: list[Annotated[float, Field(gt=0, le=_RATING_MAX, allow_inf_nan=False)]] | None = (
            Field(None, description="One rating per item, in the order of items (default 1).")
        )
        k: int = k_field

    class BatchRequest(_Body):
        model_config = ConfigDict(json_schema_extra={"examples": [{"users": some_users, "k": 10}]})
        users: list[Id] = Field(
            min_length=1,
            max_length=limits.max_batch,
            json_schema_extra=unique,
            description="Known user ids.",
        )
        k: int = k_field

    return NewUserRequest, BatchRequest


class RankedItem(BaseModel):
    item: Id
    score: float
    rank: int


class UserRecommendations(BaseModel):
    user: Id
    k: int
    items: list[RankedItem]


class NewUserRecommendations(BaseModel):
    k: int
    items: list[RankedItem]


class BatchRecommendations(BaseModel):
    results: list[UserRecommendations]


class SimilarItems(BaseModel):
    item: Id
    k: int
    items: list[RankedItem]


class ModelInfo(BaseModel):
    name: str
    hyperparameters: dict[str, Any]
    dataset: str
    protocol: str
    split_fingerprint: str | None
    data_fingerprint: str | None
    n_users: int
    n_items: int
    test: dict[str, float | None]
    provenance: dict[str, Any]
    fold_in: bool
    item_similarity: bool


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    detail: str
    errors: list[FieldError] | None = None


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a route documents in the OpenAPI schema."""
    return {code: {"model": ErrorBody} for code in codes}


# ------------------------------------------------------------------------------- the app
def create_app(
    config: "RunConfig",
    split: "Split",
    model: "Recommender",
    metrics: dict[str, Any],
    limits: Limits | None = None,
) -> FastAPI:
    """The service over a loaded run: its config, split, fitted model and ``metrics.json``."""
    limits = limits or Limits()
    service = RecommendationService(model, split, limits)
    users, items = service.user_ids[:3].tolist(), service.item_ids[:3].tolist()
    NewUserRequest, BatchRequest = request_models(limits, users, items)
    K = Annotated[int, Query(ge=1, le=limits.max_k, description="How many items to return.")]
    UserId = Annotated[str, PathParam(examples=[str(users[0])], description="A known user id.")]
    ItemId = Annotated[str, PathParam(examples=[str(items[0])], description="An item id.")]
    info = describe(config, metrics, service)
    app = FastAPI(
        title="ncflab recommendations",
        summary=f"{config.model} on {config.dataset} ({config.protocol})",
    )
    app.add_middleware(BodyLimit, limit=limits.max_body)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _unexpected)
    app.state.service = service

    # Plain ``def`` routes: FastAPI runs them in its thread pool, so CPU-bound scoring does not
    # block the event loop; the service serialises the model calls.
    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model", response_model=ModelInfo)
    def model_info() -> dict[str, Any]:
        return info

    # ``:path`` lets a text id contain "/" (sent as %2F).
    @app.get(
        "/users/{user_id:path}/recommendations",
        response_model=UserRecommendations,
        responses=_errors(404, 422),
    )
    def recommend_user(user_id: UserId, k: K = 10) -> dict[str, Any]:
        return service.for_users([user_id], k)[0]

    # What the model cannot do is left out of the schema (a client generated from it has no
    # such call) but still answered, with the reason, as a 422.
    @app.post(
        "/recommendations",
        response_model=NewUserRecommendations,
        responses=_errors(400, 404, 413, 422),
        include_in_schema=service.folds_in,
    )
    def recommend_new_user(body: NewUserRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        return service.for_new_user(body.items, body.ratings, body.k)

    @app.post(
        "/recommendations/batch",
        response_model=BatchRecommendations,
        responses=_errors(400, 404, 413, 422),
    )
    def recommend_batch(body: BatchRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        return {"results": service.for_users(body.users, body.k)}

    @app.get(
        "/items/{item_id:path}/similar",
        response_model=SimilarItems,
        responses=_errors(404, 422),
        include_in_schema=service.similarity is not None,
    )
    def similar(item_id: ItemId, k: K = 10) -> dict[str, Any]:
        return service.similar_items(item_id, k)

    return app


def load_app(
    run: str | Path,
    *,
    data_dir: str | None = None,
    max_k: int = 1000,
    threads: int = 1,
) -> FastAPI:
    """Load a finished run folder (model files and split fingerprint checked, as every reader
    of a run does) and build its service. ``threads``: torch threads of this process; one per
    worker by default, so that concurrent workers do not oversubscribe the cores."""
    import torch

    from ncflab.experiments.run import load_run
    from ncflab.runs import read_metrics

    if threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads}")
    torch.set_num_threads(threads)
    limits = Limits(max_k=max_k)  # checked before the (slower) load
    config, split, model = load_run(run, data_dir=data_dir)
    return create_app(config, split, model, read_metrics(run), limits)


def create_from_env() -> FastAPI:
    """``load_app`` with its arguments from the environment (``ENV``): the factory each
    uvicorn worker process calls when ``ncflab serve`` runs several."""
    run = os.environ.get(ENV["run"])
    if not run:
        raise RuntimeError(f"{ENV['run']} is not set: it names the run folder to serve")
    return load_app(
        run,
        data_dir=os.environ.get(ENV["data_dir"]) or None,
        max_k=int(os.environ.get(ENV["max_k"], "1000")),
        threads=int(os.environ.get(ENV["threads"], "1")),
    )


# ---------------------------------------------------------------------------- the errors
async def _service_error(request: Request, err: Exception) -> JSONResponse:
    status = err.status if isinstance(err, ServiceError) else 422
    return JSONResponse({"detail": str(err)}, status_code=status)


async def _invalid(request: Request, err: Exception) -> JSONResponse:
    # FastAPI's own answer is a bare list; ours keeps it (without the inputs, which may be a
    # whole oversized body) and leads with one readable sentence, as every other error does.
    errors = err.errors() if isinstance(err, RequestValidationError) else []
    issues = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in errors
    ]
    detail = "; ".join(f"{_where(e['loc'])}: {e['msg']}{_got(e)}" for e in errors) or str(err)
    return JSONResponse({"detail": detail, "errors": issues}, status_code=422)


def _where(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _got(error: dict[str, Any]) -> str:
    if error.get("type") == "missing" or "input" not in error:
        return ""
    text = repr(error["input"])
    return f" (got {text if len(text) <= 60 else text[:57] + '...'})"


async def _unexpected(request: Request, err: Exception) -> JSONResponse:
    # The last resort: the client gets a short message, never a traceback; Starlette re-raises
    # the error after this answer, so the server logs it in full.
    return JSONResponse(
        {"detail": f"internal error ({type(err).__name__}); the server log has the details"},
        status_code=500,
    )


class BodyLimit:
    """Refuses a request body over ``limit`` bytes with 413, before the app reads it: by its
    Content-Length when it declares one, else (a chunked body) by reading at most ``limit`` + 1
    bytes, then handing the buffered body on to the app."""

    def __init__(self, app: "ASGIApp", limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: "Scope", receive: "Receive", send: "Send") -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await self._refuse(scope, receive, send, 400, "Content-Length is not a number")
                return
            if size > self.limit:
                await self._refuse(scope, receive, send, 413, self._too_large(size))
                return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":  # the client went away: let the app see it
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, receive, send, 413, self._too_large())
                return
            if not message.get("more_body", False):
                break

        async def replay() -> "Message":
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)

    def _too_large(self, size: int | None = None) -> str:
        got = "" if size is None else f", got {size}"
        return f"request body over the limit of {self.limit} bytes{got}"

    @staticmethod
    async def _refuse(
        scope: "Scope", receive: "Receive", send: "Send", status: int, text: str
    ) -> None:
        await JSONResponse({"detail": text}, status_code=status)(scope, receive, send)
