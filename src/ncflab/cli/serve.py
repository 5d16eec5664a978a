"""``ncflab serve``: an HTTP recommendation service over a saved run (FastAPI on uvicorn). The
app and its endpoints are ``ncflab.serving.app``; this verb reads the flags, loads the run (or,
for several workers, checks it and lets each worker load it) and starts the server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ncflab.cli._app import DataDir, app, verb
from ncflab.cli.inspect import RunArg


@app.command()
@verb
def serve(
    run: RunArg,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8000,
    workers: Annotated[
        int, typer.Option(help="Worker processes, each with its own copy of the model.", min=1)
    ] = 1,
    max_k: Annotated[int, typer.Option(help="The largest k a request may ask for.", min=1)] = 1000,
    threads: Annotated[
        int, typer.Option(help="Torch threads per worker (scoring is CPU-bound).", min=1)
    ] = 1,
    data_dir: DataDir = None,
) -> None:
    """Serve a saved run's recommendations over HTTP: top-K for known users, fold-in for new
    users, similar items, the model's record (endpoints in docs/cli.md, schema at
    /openapi.json). The run is checked as every reader checks it (model files, split)."""
    try:
        import uvicorn

        from ncflab.serving.app import ENV, load_app
    except ImportError as err:
        raise ImportError(
            f"ncflab serve needs fastapi and uvicorn ({err}): pip install 'ncflab[serve]'"
        ) from None

    if workers == 1:
        # Loaded here, before the server starts: a bad run is one line and exit status 2.
        served = load_app(run, data_dir=data_dir, max_k=max_k, threads=threads)
        uvicorn.run(served, host=host, port=port)
        return
    from ncflab.experiments.run import load_run

    # Each worker process loads the run itself. It is loaded once here first, with every check
    # a worker makes (model files, data, split fingerprint): a worker that fails to load is
    # restarted by uvicorn's supervisor for ever, so a bad run or missing data must be refused
    # before any worker starts.
    load_run(run, data_dir=data_dir)
    os.environ[ENV["run"]] = str(Path(run).resolve())
    if data_dir is not None:
        os.environ[ENV["data_dir"]] = str(Path(data_dir).expanduser().resolve())
    os.environ[ENV["max_k"]] = str(max_k)
    os.environ[ENV["threads"]] = str(threads)
    uvicorn.run(
        "ncflab.serving.app:create_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
    )
