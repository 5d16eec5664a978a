"""The Typer app, the options several verbs share, and the one place errors become messages.

A user's mistake (an unknown name, a bad value, a missing or changed file, a run folder that
cannot be used as asked) is one line on stderr and exit status 2. Anything else is a bug: one
line naming the file where its traceback was written for a bug report, exit status 1;
``ncflab --debug VERB`` prints the traceback instead.
"""

from __future__ import annotations

import datetime
import functools
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

__all__ = ["DataDir", "K", "app", "console", "data_app", "err_console", "user_errors", "verb"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="ncflab: neural collaborative filtering (J-NCF, JCA, NCR), baselines and protocols.",
)
data_app = typer.Typer(no_args_is_help=True, help="List, describe and split datasets.")
app.add_typer(data_app, name="data")
console = Console()
err_console = Console(stderr=True)

_STATE = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Print the traceback of an unexpected error.")
    ] = False,
) -> None:
    _STATE["debug"] = debug


DataDir = Annotated[
    str | None,
    typer.Option("--data-dir", "-D", help="Directory with dataset files (else $NCFLAB_DATA_DIR)."),
]
K = Annotated[list[int] | None, typer.Option("--k", "-k", help="Cut-off (repeat for several).")]


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean a user's mistake or a state of their files (not a bug)."""
    import torch

    from ncflab.training.driver import NonFiniteLossError

    return (
        KeyError,
        ValueError,
        IndexError,
        OSError,
        ImportError,
        NonFiniteLossError,
        torch.OutOfMemoryError,
        # A fit refused by its memory estimate (memory.MemoryLimitError) or an allocation the
        # machine could not make: a state of the machine and the data's size, not a bug.
        MemoryError,
    )


def _message(err: BaseException) -> str:
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    return str(err) or type(err).__name__


F = TypeVar("F", bound=Callable[..., Any])


def verb(fn: F) -> F:
    """Run a command, turning errors into one line (see the module docstring)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            err_console.print("interrupted", highlight=False)
            raise typer.Exit(130) from None
        except user_errors() as err:
            if _STATE["debug"]:
                traceback.print_exc()
            err_console.print(f"[red]error:[/red] {_message(err)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except Exception as err:
            if _STATE["debug"]:
                traceback.print_exc()
                raise typer.Exit(1) from None
            where = _write_bug_report(err)
            err_console.print(
                f"[red]internal error:[/red] {type(err).__name__}: {err}. This is a bug in "
                f"ncflab; the traceback is in {where} (attach it to a bug report), or run "
                "again with `ncflab --debug …` to print it.",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _write_bug_report(err: BaseException) -> Path:
    from platformdirs import user_cache_dir

    from ncflab import __version__

    folder = Path(os.environ.get("NCFLAB_CACHE_DIR") or user_cache_dir("ncflab")) / "bug-reports"
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"ncflab-{stamp}-{os.getpid()}.txt"
    text = (
        f"ncflab {__version__}, Python {sys.version.split()[0]}\n"
        f"command: {' '.join(sys.argv)}\n\n"
        + "".join(traceback.format_exception(type(err), err, err.__traceback__))
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError:
        path = Path(os.devnull)
    return path
