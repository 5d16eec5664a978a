"""The ``ncflab`` command line, one module per verb family: ``data`` (list, info, split),
``train`` (train, resume, tune), ``inspect`` (evaluate, compare, significance, rules,
recommend), ``export``, ``serve``; ``_app`` holds the app and turns errors into one-line
messages, ``render`` draws.
"""

from __future__ import annotations

import logging
import sys

from ncflab.cli import data, export, inspect, reproduce, serve, train  # noqa: F401  (registers the verbs)
from ncflab.cli._app import app, console

__all__ = ["app", "console", "main"]


def main() -> None:
    from ncflab.training.distributed import env_rank

    # Under torchrun every rank runs the command: rank 0 speaks for them (errors still show).
    quiet = env_rank() != 0
    level = logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    console.quiet = quiet
    app()


if __name__ == "__main__":
    main()
