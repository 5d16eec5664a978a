"""``ncflab reproduce`` and ``ncflab report``: the papers' tables from experiment files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ncflab.cli._app import DataDir, app, console, err_console, verb

Paper = Annotated[str, typer.Argument(help="jncf, jca or ncr (a folder of experiment files).")]
ProfileOpt = Annotated[
    str, typer.Option("--profile", help="smoke (machinery, tiny), quick (minutes) or full.")
]
Results = Annotated[
    Path, typer.Option("--results", help="Where cell summaries are kept (committed).")
]
Experiments = Annotated[
    Path, typer.Option("--experiments", help="Folder of experiment files, one per paper.")
]


@app.command()
@verb
def reproduce(
    paper: Paper,
    table: Annotated[
        list[str] | None, typer.Option("--table", "-t", help="Experiment file name (repeat).")
    ] = None,
    profile: ProfileOpt = "quick",
    seeds: Annotated[
        int | None, typer.Option(help="Model seeds per cell (else the file's).")
    ] = None,
    results: Results = Path("results"),
    runs_root: Annotated[
        Path, typer.Option("--runs", help="Where the cells' run folders go (not committed).")
    ] = Path("runs/reproduce"),
    experiments: Experiments = Path("experiments"),
    threads: Annotated[int, typer.Option(help="Torch CPU threads per cell (0: default).")] = 0,
    cell: Annotated[
        list[str] | None,
        typer.Option("--cell", help="Run only this cell (row/dataset/seed-S; repeat)."),
    ] = None,
    print_commands: Annotated[
        bool,
        typer.Option(
            "--print-commands",
            help="Print one command per unfinished cell, for a scheduler, and run nothing.",
        ),
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Run the cells of a paper's experiment files that are not finished yet (each a normal
    run folder: resumable, fingerprinted) and keep each finished cell's summary under RESULTS;
    a killed reproduction continues where it stopped. Then `ncflab report PAPER`.
    ``--print-commands`` lists the unfinished cells as independent commands (one line each,
    ``--cell``), to run in parallel or on other machines with any scheduler."""
    from ncflab.reproduce.runner import run_experiment_cells
    from ncflab.reproduce.spec import experiment_files, load_experiment

    files = experiment_files(experiments, paper)
    if table:
        names = {f.stem for f in files}
        unknown = sorted(set(table) - names)
        if unknown:
            raise KeyError(f"no experiment {unknown} for {paper}; it has {sorted(names)}")
        files = [f for f in files if f.stem in table]
    experiments_ = [load_experiment(path) for path in files]
    only = set(cell) if cell else None
    if only is not None:
        keys = {c.key for e in experiments_ for c in e.cells(profile, seeds=seeds)}
        unknown = sorted(only - keys)
        if unknown:
            raise KeyError(
                f"no cell {unknown} in {paper} ({profile}); cells are row/dataset/seed-S, "
                f"e.g. {sorted(keys)[0]!r}"
            )
    if print_commands:
        shared = {"--profile": profile, "--results": results, "--runs": runs_root,
                  "--experiments": experiments, "--threads": threads or None,
                  "--seeds": seeds, "--data-dir": data_dir}  # fmt: skip
        for line in cell_commands(paper, experiments_, only, shared, data_dir, threads):
            print(line)
        return
    failed = 0
    for experiment in experiments_:

        def report(outcome, i: int, n: int, name: str = experiment.name) -> None:
            extra = f": {outcome.error}" if outcome.error else ""
            err_console.print(
                f"{paper}/{name} [{i}/{n}] {outcome.cell.key}: {outcome.status} "
                f"({outcome.seconds:.1f}s){extra}",
                highlight=False,
                markup=False,  # grid row ids hold brackets: [factors=8]
            )

        outcomes = run_experiment_cells(
            experiment, profile=profile, results=results, runs_root=runs_root, seeds=seeds,
            data_dir=data_dir, threads=threads, on_cell=report, only=only,
        )  # fmt: skip
        done = sum(o.status != "failed" for o in outcomes)
        failed += len(outcomes) - done
        console.print(f"{paper}/{experiment.name} ({profile}): {done}/{len(outcomes)} cells done")
    if failed:
        console.print(f"{failed} cells failed (their messages above); the others are kept")


def cell_commands(
    paper: str,
    experiments: list,
    only: set[str] | None,
    shared: dict[str, object],
    data_dir: str | None,
    threads: int,
) -> list[str]:
    """One ``ncflab reproduce`` command per unfinished cell (a view's cells are its source's,
    named once), with the options given here (``shared``, None = not given)."""
    import shlex

    from ncflab.reproduce.runner import is_done

    profile = str(shared["--profile"])
    options = [str(part) for k, v in shared.items() if v is not None for part in (k, v)]
    seen: set[tuple[str, str]] = set()
    lines = []
    for experiment in experiments:
        for c in experiment.cells(profile, seeds=shared["--seeds"]):
            name = (c.experiment.name, c.key)
            if name in seen or (only is not None and c.key not in only):
                continue
            seen.add(name)
            if is_done(c, Path(str(shared["--results"])), data_dir, threads):
                continue
            command = ["ncflab", "reproduce", paper, "--table", c.experiment.name]
            lines.append(shlex.join([*command, "--cell", c.key, *options]))
    return lines


@app.command()
@verb
def report(
    paper: Paper,
    profile: ProfileOpt = "quick",
    results: Results = Path("results"),
    experiments: Experiments = Path("experiments"),
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Where the pages go (docs/results; docs/results/PROFILE else)."
        ),
    ] = None,
    readme: Annotated[
        Path | None,
        typer.Option(
            help="Also rewrite the results-at-a-glance table of this README (between its "
            "marker lines) from every paper's summaries."
        ),
    ] = None,
) -> None:
    """Build docs/results/PAPER.md (quick; docs/results/PROFILE/PAPER.md for another
    profile), with CSV and PNG, from the committed cell summaries: ours as mean ± std over
    seeds beside the paper's figures, paired tests against the strongest baseline
    (Holm-corrected), provenance. Nothing there is edited by hand."""
    from ncflab.reproduce.report import build_report, write_report
    from ncflab.reproduce.spec import experiment_files, load_experiment

    exps = [load_experiment(p) for p in experiment_files(experiments, paper)]
    out = out or results_folder(profile)
    written = write_report(build_report(exps, results, profile), out)
    for path in written:
        console.print(f"wrote {path}")
    if readme is not None:
        from ncflab.reproduce.glance import glance_markdown, update_readme

        papers = sorted(p.name for p in Path(experiments).iterdir() if p.is_dir())
        every = {
            name: [load_experiment(p) for p in experiment_files(experiments, name)]
            for name in papers
        }
        if not update_readme(readme, glance_markdown(every, results)):
            raise ValueError(f"{readme} has no results-at-a-glance marker lines to write between")
        console.print(f"wrote the results-at-a-glance table of {readme}")


def results_folder(profile: str) -> Path:
    """Where a profile's pages go: docs/results for quick (the complete pages), a folder of
    their own for the others."""
    return Path("docs/results") if profile == "quick" else Path("docs/results") / profile
