"""`flask --app app submissions scan|anomalies`: detection over folders, no database.

    submissions scan DIR [--sources DIR] [--template FILE] --json
    submissions anomalies DIR --json

Unreadable files are reported on stderr by name, and the rest are still scanned.
Word and PDF files are read in an extraction worker with a memory limit
(`plagiarism.isolation`), so a hostile file is refused with its reason and
cannot take the command down; a long file shows its progress on a terminal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask.cli import AppGroup

from plagiarism.anomaly import detect_anomalies
from plagiarism.extract import UnreadableSubmission
from plagiarism.isolation import IsolatedExtractor
from plagiarism.nearduplicate import scan

submissions_cli = AppGroup("submissions", help="Submission integrity: near-duplicates and anomalies.")


def _files(folder: Path) -> list[Path]:
    """Regular, non-hidden files of a folder, sorted by name (oldest first, by convention)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _terminal_progress(name: str):
    """A progress line on stderr for a long file, when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int, stage: str) -> None:
        detail = f"page {done:,} of {total:,}" if stage == "reading pages" else stage
        click.echo(f"\rreading {name}: {detail}\033[K", err=True, nl=False)

    return show


def read_folder(folder: Path, warn=None, extractor: IsolatedExtractor | None = None) -> dict[str, str]:
    """{file name: text} of every readable file; each unreadable one is reported through `warn`."""
    texts: dict[str, str] = {}
    reader = extractor or IsolatedExtractor()
    for path in _files(folder):
        progress = _terminal_progress(path.name)
        try:
            texts[path.name] = reader.extract_file(path, progress=progress)
        except UnreadableSubmission as exc:
            if warn:
                warn(f"{exc.filename}: {exc.reason} (skipped)")
        finally:
            if progress:
                click.echo("\r\033[K", err=True, nl=False)
    if extractor is None:
        reader.close()
    return texts


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _excerpt(text: str, span: tuple[int, int], width: int = 60) -> str:
    s = " ".join(text[span[0]:span[1]].split())
    return s if len(s) <= width else s[: width - 1] + "…"


@submissions_cli.command("scan")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--sources", "sources_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of reference sources (readings, past cohorts).")
@click.option("--template", "template_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Instructor template text that does not count (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def scan_command(directory: Path, sources_dir: Path | None, template_files: tuple[Path, ...],
                 as_json: bool) -> None:
    """Compare every file in DIRECTORY with the others and with the sources."""
    with IsolatedExtractor() as extractor:  # one worker for every file of the command
        submissions = read_folder(directory, _warn, extractor)
        if not submissions:
            _fail(f"no readable submissions in {directory}")
        sources = read_folder(sources_dir, _warn, extractor) if sources_dir else {}
        templates = []
        for path in template_files:
            try:
                templates.append(extractor.extract_file(path))
            except UnreadableSubmission as exc:
                _warn(f"{exc.filename}: {exc.reason} (template ignored)")
    result = scan(submissions, sources, templates=templates)
    cluster_of = {name: group for group in result.clusters for name in group}
    rows = []
    for r in result.reports:
        d = r.as_dict()
        d["cluster"] = cluster_of.get(r.submission)
        rows.append(d)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    click.echo(f"{'submission':<28} {'score':>6}  {'flagged':<7}  largest match")
    for r in result.reports:
        top = max(r.matches, key=lambda m: m.submission_span[1] - m.submission_span[0], default=None)
        where = "-"
        if top:
            where = (f"{top.source} ({top.method}, similarity {top.similarity:.2f}): "
                     f"\"{_excerpt(submissions[r.submission], top.submission_span)}\"")
        click.echo(f"{r.submission:<28} {r.score:>6.2f}  {'yes' if r.flagged else 'no':<7}  {where}")
    for n, group in enumerate(result.clusters, 1):
        click.echo(f"cluster {n}: {', '.join(group)}")


@submissions_cli.command("anomalies")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def anomalies_command(directory: Path, as_json: bool) -> None:
    """Score each student's texts against their own others (one sub-folder per student)."""
    students: dict[str, dict[str, str]] = {}
    with IsolatedExtractor() as extractor:
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                students[entry.name] = read_folder(entry, lambda m, s=entry.name: _warn(f"{s}/{m}"), extractor)
            else:
                _warn(f"{entry.name}: not inside a student's folder (ignored)")
    if not any(students.values()):
        _fail(f"no readable texts in the student folders of {directory}")
    reports = detect_anomalies(students)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in reports], indent=2, ensure_ascii=False))
        return
    click.echo(f"{'student':<16} {'submission':<24} {'score':>6}  {'flagged':<7}  reason")
    for r in reports:
        click.echo(f"{r.student:<16} {r.submission:<24} {r.score:>6.2f}  "
                   f"{'yes' if r.flagged else 'no':<7}  {r.reasons[0] if r.reasons else ''}")


# The commands over the database attach themselves to `submissions_cli` (at the
# end: they import this module).
import plagiarism.cli_store  # noqa: E402,F401
