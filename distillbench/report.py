"""``distillbench report``: a static HTML page of a results store (``index.html`` and its PNGs, opens from disk).

Per dataset and protocol: the comparison table (the same cells, bold marks and published columns as
``compare``), the accuracy-vs-IPC plot, DD-Ranking's scores, every method's image grid side by side per IPC,
and the protocol's resolved settings; then each run's provenance (command, versions, checksums, timings).
The page is a Jinja2 template (``templates/report.html.j2``).
"""
import json
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

from distillbench import atomic, ddranking, tables
from distillbench.distilled import FULL_METHOD
from distillbench.labels import labelled
from distillbench.store import Store


def write_report(root: Path, out: Path, dataset=None, protocol=None, paper=()) -> Path:
    """Write the report of the evaluations stored under ``root`` (optionally one dataset or protocol) into
    ``out``; the path of its ``index.html``."""
    import jinja2

    from distillbench import __version__
    from distillbench.python_api import stored_evaluations
    df = labelled(stored_evaluations(root, dataset, protocol, with_records=True))
    (out / "plots").mkdir(parents=True, exist_ok=True)
    (out / "grids").mkdir(exist_ok=True)
    runs = {run_id: Store(root).run(run_id) for run_id in df["run_id"].dropna().unique()}
    runs = {run_id: recorded for run_id, recorded in runs.items() if recorded is not None}
    sections = [_section(rows, df[df["dataset"] == dataset_name], protocol_name, out, runs,
                         [result for result in paper if result.dataset == dataset_name], number)
                for number, ((dataset_name, protocol_name), rows) in enumerate(df.groupby(["dataset", "protocol"]))]
    environment = jinja2.Environment(loader=jinja2.PackageLoader("distillbench", "templates"),
                                     autoescape=True, undefined=jinja2.StrictUndefined)
    page = environment.get_template("report.html.j2").render(
        root=str(root), evaluations=len(df), sections=sections, marked_note=tables.MARKED, version=__version__,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        runs=[{"run_id": run_id, "provenance": _provenance(Path(path))} for run_id, (path, _) in sorted(runs.items())])
    index = out / "index.html"
    atomic.write_bytes(index, page.encode())
    return index


def _section(rows, dataset_rows, protocol: str, out: Path, runs: dict, paper, number: int) -> dict:
    """One dataset and protocol; DD-Ranking's scores need the dataset's other protocols (hard labels)."""
    title = f"{rows['dataset'].iloc[0]} / {protocol}"
    anchor = f"{number}-" + re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-")
    distilled = rows[rows["method"] != FULL_METHOD]
    table, bold, unmatched = (tables.marked_table(distilled, "final_acc", paper) if not distilled.empty
                              else (None, None, paper))  # the full-data reference alone: no method to tabulate
    plot = tables.plot(rows, out / "plots" / f"{anchor}.png")
    ranking = ddranking.table(dataset_rows)
    ranking = ranking[ranking["protocol"] == protocol] if not ranking.empty else ranking
    return {"title": title, "anchor": anchor, "plot": plot.relative_to(out).as_posix(),
            "table": _rows(table, bold, keys=len(tables.row_keys(distilled))) if table is not None else None,
            "published": _rows(tables.published_table(unmatched)) if unmatched else None,
            "ranking": _rows(ranking.round(4)) if not ranking.empty else None,
            "grids": _grids(distilled, out, runs), "settings": _settings(rows)}


def _rows(frame, bold=None, keys: int = 0) -> dict:
    """A table for the template: headers, and cells with their text and kind (key, marked or plain)."""
    marks = bold.to_numpy() if bold is not None else None
    return {"headers": [str(c) for c in frame.columns],
            "rows": [[{"text": str(value), "kind": "key" if j < keys else
                       "marked" if marks is not None and marks[i, j] else ""}
                      for j, value in enumerate(row)] for i, row in enumerate(frame.itertuples(index=False))]}


def _grids(rows, out: Path, runs: dict) -> list:
    """(IPC, [each method's grid]) with the grids copied beside the page; one grid per method and IPC (its
    first run)."""
    shown = {}
    for (ipc, method), group in rows.groupby(["ipc", "method"]):
        run_id = next((r for r in group["run_id"] if r in runs), None)
        grid = Path(runs[run_id][0]) / "grid.png" if run_id else None
        if grid is not None and grid.is_file():
            target = out / "grids" / f"{run_id}.png"
            shutil.copyfile(grid, target)
            shown.setdefault(int(ipc), []).append({"method": method, "run_id": run_id,
                                                   "src": target.relative_to(out).as_posix()})
    return sorted(shown.items())


def _settings(rows) -> list:
    """(protocol and version, its resolved settings as JSON) of each distinct resolution in ``rows``."""
    distinct = {}
    for record in rows["record"]:
        resolved = record.get("protocol_resolved") or {}
        name = f"{resolved.get('name', record.get('protocol'))} v{resolved.get('version', '?')}"
        text = json.dumps(resolved.get("settings", {}), indent=1, sort_keys=True)
        distinct.setdefault(text, f"{name} ({record.get('student')}, IPC {record.get('ipc')})")
    return sorted((name, text) for text, name in distinct.items())


def _provenance(path: Path) -> str:
    """What a run's manifest says of how it was made: command, versions, checksums, inputs, timings."""
    manifest = json.loads((path / "manifest.json").read_text())
    keys = ("command", "created", "device", "world_size", "seed", "options", "versions", "images_checksum",
            "inputs", "timings", "notes")
    return json.dumps({key: manifest[key] for key in keys if key in manifest}, indent=1, default=str)
