"""The ``distillbench`` command line.  Plugins add commands through ``register_commands``."""
import functools
import json
import os
import sys
from pathlib import Path

import click

from distillbench.errors import DistillbenchError, UsageError
from distillbench.plugins import get_plugins, registry


def say_error(message: str) -> None:
    """Print the one-line error as the last line: progress bars that the failure left open are closed
    first, since closing them when they are collected would clear a line after it."""
    from tqdm import tqdm
    for bar in list(tqdm._instances):
        bar.close()
    click.echo(f"Error: {message}", err=True)


class Group(click.Group):
    """Turns DistillbenchError into one line on stderr and its exit code (2 for usage errors), and so a
    file system refusal (a path through a file, a full disk, no permission) too."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DistillbenchError as exc:
            say_error(str(exc))
            ctx.exit(exc.exit_code)
        except BrokenPipeError:  # the reader stopped reading (`distillbench models | head -3`): not a failure
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the exit's flush is silent
            ctx.exit(0)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            say_error(f"{where}{exc.strerror or exc}; check the path, its permissions and the free disk space")
            ctx.exit(1)


def root_option(f):
    return click.option("--root", type=click.Path(file_okay=False, path_type=Path), envvar="DISTILLBENCH_ROOT",
                        default="distillbench-runs", show_default=True,
                        help="Where runs, grids and the results store go (env DISTILLBENCH_ROOT).")(f)


def seed_option(f):
    return click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
                        help="Random seed (0 to 2**32-1).")(f)


def device_option(f):
    return click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")(f)


def data_options(f):
    """--data-dir, --download, --skip-bad-images and --workers, handed to the command as one ``data`` (a
    DataSource)."""
    @functools.wraps(f)
    def with_data(*args, data_dir, download, skip_bad_images, workers, **kwargs):
        from distillbench.datasets import DataSource
        return f(*args, data=DataSource(data_dir, download, skip_bad_images, workers), **kwargs)

    with_data = click.option("--workers", type=click.IntRange(min=1), default=None,
                             help="Processes decoding image files (default: the cores available to the "
                                  "process).")(with_data)
    with_data = click.option("--skip-bad-images", is_flag=True,
                             help="Leave out image files that cannot be decoded (counted in the manifest) "
                                  "instead of stopping at the first one.")(with_data)
    with_data = click.option("--download", is_flag=True, help="Allow downloading datasets that support it.")(with_data)
    return click.option("--data-dir", type=click.Path(path_type=Path), envvar="DISTILLBENCH_DATA",
                        help="Folder holding on-disk datasets (env DISTILLBENCH_DATA).")(with_data)


def eval_options(f):
    for decorator in reversed([
        click.option("--student", "students", multiple=True, default=("conv3",), show_default=True,
                     help="Student architecture(s) to train; repeat the flag for several."),
        click.option("--teacher", "teachers", multiple=True,
                     help="Teacher: [ARCH=]PATH of a checkpoint, or published weights torchvision:NAME[.WEIGHTS] or "
                          "timm:NAME; several are averaged. Default: the cached teacher."),
        click.option("--protocol", default="rded", show_default=True, help="Named evaluation protocol."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a protocol setting."),
        click.option("--repeats", type=click.IntRange(min=1),
                     help="Trainings (seeds) per student. Default: the protocol's (3; d3hr 5)."),
        click.option("--evaluator", default="students", show_default=True, help="Registered evaluator to use."),
        click.option("--again", is_flag=True, help="Train seeds again even where an identical evaluation "
                                                   "(same set, student, settings, teacher, seed) is stored."),
    ]):
        f = decorator(f)
    return f


@click.group(cls=Group)
@click.version_option(package_name="distillbench")
def cli():
    """distillbench: distill datasets with pluggable methods and compare them under one protocol."""


def _add_listing(kind: str, plural: str) -> None:
    @cli.command(name=plural, help=f"List the registered {plural}.")
    @click.option("-q", "--quiet", "names_only", is_flag=True, help="Names only, one per line.")
    def listing(names_only):
        _echo_listing(kind, names_only)


def _echo_listing(kind: str, names_only: bool) -> None:
    entries = registry(kind)
    for name, item in zip(entries.names(), entries.items()):
        click.echo(name if names_only else f"{name:<20} {item.description}  [{entries.origin(name)}]")


for _kind, _plural in (("dataset", "datasets"), ("model", "models"), ("evaluator", "evaluators")):
    _add_listing(_kind, _plural)


@cli.command()
@click.argument("name", required=False)
@click.option("-q", "--quiet", "names_only", is_flag=True, help="Names only, one per line.")
def methods(name, names_only):
    """List the registered methods, or show one: NAME's description, citation and options."""
    if name is None:
        _echo_listing("method", names_only)
        return
    from distillbench.options import describe
    method = registry("method").get(name)
    plugin, version = get_plugins().version_of("method", name)
    click.echo(f"{name}: {method.description}\nplugin: {plugin} {version}\ncitation: {method.citation or '-'}")
    described = describe(method.Options)
    click.echo("options (--option key=value):" if described else "options: none")
    rows = [(o["name"], o["type"], "none" if o["default"] is None else str(o["default"]), o["help"])
            for o in described]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
    for row in rows:
        click.echo("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + f"  {row[3]}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json):
    """List loaded plugins: version, origin, hooks, what each registered, errors."""
    infos = [info.as_dict() for info in get_plugins().info.values()]
    if as_json:
        click.echo(json.dumps(infos, indent=2))
        return
    for info in infos:
        state = "disabled" if info["disabled"] else ("FAILED" if info["errors"] else "ok")
        click.echo(f"{info['name']} {info['version']} ({state}) from {info['source']}")
        if info["hooks"]:
            click.echo(f"  hooks: {', '.join(info['hooks'])}")
        for kind, names in info["registered"].items():
            click.echo(f"  {kind}s: {', '.join(names)}")
        for error in info["errors"]:
            click.echo(f"  error: {error}")


def _print_result(record: dict) -> None:
    best = f", best {record['best_acc'] * 100:.2f}%" if record.get("best_acc") is not None else ""
    when = "stored earlier; --again re-trains" if record.get("reused") else f"{record['seconds']:.0f}s"
    click.echo(f"{record['method']} ipc={record['ipc']} {record['student']} seed={record['seed']}: "
               f"{record['final_acc'] * 100:.2f}%{best} ({when})")


def distill_and_report(cfg):
    """Distill (or resume, or reuse) a run, write its grid, say where both are."""
    from distillbench import distributed
    from distillbench.python_api import distill_with_grid
    distilled = distill_with_grid(cfg)
    if distributed.is_main():
        click.echo(f"run {distilled.manifest['run_id']}\n  distilled set: {distilled.path}\n"
                   f"  grid: {distilled.path / 'grid.png'}")
    return distilled


def _request(students, teachers, protocol, overrides, repeats, seed, device) -> dict:
    """The evaluation options as :func:`distillbench.python_api.evaluate` takes them."""
    from distillbench.options import parse_pairs
    return dict(students=students, teachers=teachers, protocol=protocol, overrides=parse_pairs(overrides, "--set"),
                repeats=repeats, seed=seed, device=device)


@cli.command()
@click.option("--method", required=True, help="Registered method (see `distillbench methods`).")
@click.option("--dataset", default="mnist5k", show_default=True, help="Registered dataset.")
@click.option("--ipc", type=int, required=True, help="Images per class.")
@seed_option
@device_option
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="A method option.")
@click.option("--evaluate", "do_evaluate", is_flag=True, help="Also evaluate the distilled set.")
@eval_options
@data_options
@root_option
def run(method, dataset, ipc, seed, device, options, do_evaluate, students, teachers, protocol, overrides,
        repeats, evaluator, again, data, root):
    """Distill DATASET with METHOD at IPC images per class, record it, optionally evaluate it."""
    from distillbench import python_api
    from distillbench.device import resolve_device
    from distillbench.options import parse_pairs
    from distillbench.distillation import RunConfig
    registry("dataset").get(dataset)
    device = resolve_device(device)
    request = _request(students, teachers, protocol, overrides, repeats, seed, device)
    if do_evaluate:  # refuse a bad evaluation before any distilling
        python_api.evaluation_request(dataset, evaluator=evaluator, data=data, **request)
    cfg = RunConfig(method=method, dataset=dataset, ipc=ipc, seed=seed, device=device,
                    options=parse_pairs(options), root=root, data=data)
    distilled = distill_and_report(cfg)
    if do_evaluate:
        python_api.evaluate(distilled, root=root, evaluator=evaluator, again=again, on_result=_print_result,
                            data=data, **request)


@cli.command(name="evaluate")
@click.argument("target")
@click.option("--dataset", help="Dataset of an ImageFolder without manifest (default: the run's).")
@seed_option
@device_option
@eval_options
@data_options
@root_option
def evaluate_cmd(target, dataset, seed, device, students, teachers, protocol, overrides, repeats, evaluator,
                 again, data, root):
    """Evaluate TARGET: a recorded run id, a folder of distilled images, or `full`
    (the whole training set: the full-data reference of DD-Ranking's metrics)."""
    from distillbench import python_api
    from distillbench.device import resolve_device
    python_api.evaluate(target, dataset=dataset, root=root, evaluator=evaluator, again=again,
                        on_result=_print_result, data=data,
                        **_request(students, teachers, protocol, overrides, repeats, seed, resolve_device(device)))


@cli.command()
@click.option("--dataset", help="Only this dataset.")
@click.option("--protocol", help="Only this evaluation protocol.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "latex", "csv"]), default="markdown",
              show_default=True)
@click.option("--metric", type=click.Choice(["final", "best", "reported"]), default="final", show_default=True,
              help="Final-epoch accuracy, the best periodic one (selected on the test set), or the one each "
                   "protocol's source reports (rded, d3hr: that best; the others: the final).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Write accuracy vs IPC to this file, as its suffix says: .png, .pdf, .svg or .jpg.")
@click.option("--paper", is_flag=True, help="Show the papers' published results beside the measured cells (as "
                                           "`METHOD (paper)` columns) and those of other settings below the table.")
@root_option
def compare(dataset, protocol, fmt, metric, plot, paper, root):
    """Paper-style table of stored evaluations: student x IPC rows, method columns."""
    from distillbench import tables
    from distillbench.python_api import stored_evaluations
    if plot:
        tables.plot_format(plot)  # refuse an unknown suffix before any work
    df = stored_evaluations(root, dataset, protocol)
    click.echo(tables.render(df, fmt, f"{metric}_acc", registry("paper_result").items() if paper else ()))
    if plot:
        click.echo(f"plot: {tables.plot(df, plot, f'{metric}_acc')}", err=True)


@cli.command()
@click.argument("run_id")
@click.option("--format", "fmt", type=click.Choice(["hf"]), default="hf", show_default=True,
              help="hf: a Hugging Face `datasets` dataset (save_to_disk; push_to_hub from there).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder to write.")
@root_option
def export(run_id, fmt, out, root):
    """Write the set of RUN_ID (or a set's folder) in another format: images, labels, stored soft labels, and
    the manifest as metadata."""
    from distillbench.distillation import find_distilled
    from distillbench.hf import export as export_hf
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out} is not empty; name a new folder")
    click.echo(f"exported: {export_hf(find_distilled(run_id, root), out)}")


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the page and its images (default: ROOT/report).")
@click.option("--dataset", help="Only this dataset.")
@click.option("--protocol", help="Only this evaluation protocol.")
@root_option
def report(out, dataset, protocol, root):
    """A static HTML report of the stored results: per dataset and protocol the table (with the papers'
    published cells), the plot, DD-Ranking's scores, the methods' images side by side and the protocol's
    settings; each run's provenance.  Opens from disk."""
    from distillbench.report import write_report
    index = write_report(root, out or root / "report", dataset, protocol, registry("paper_result").items())
    click.echo(f"report: {index}")


@cli.command()
@click.argument("run_id", required=False)
@click.option("--grid", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG grid, one row per class.")
@root_option
def show(run_id, grid, root):
    """Show a recorded run, its evaluations first (or list run ids when none is given)."""
    import pandas as pd

    from distillbench.store import Store
    store = Store(root)
    if run_id is None:
        for rid in store.run_ids():
            click.echo(rid)
        return
    recorded = store.run(run_id)
    if recorded is None:
        raise UsageError(f"no run '{run_id}' under {root}; list them with `distillbench show`")
    path, manifest = recorded
    evaluations = store.evaluations(run_id=run_id).sort_values(["student", "protocol", "seed"])
    click.echo(f"evaluations ({len(evaluations)}):" if len(evaluations) else
               f"evaluations: none yet (`distillbench evaluate {run_id}`)")
    for row in evaluations.itertuples():
        best = "-" if pd.isna(row.best_acc) else f"{row.best_acc * 100:.2f}%"
        click.echo(f"  {row.student}  {row.protocol}  seed {row.seed}  final {row.final_acc * 100:.2f}%  best {best}")
    click.echo(json.dumps({"path": str(path), **manifest}, indent=2, sort_keys=True))
    if grid:
        from distillbench.distilled import DistilledSet
        from distillbench.grid import write_grid
        click.echo(f"grid: {write_grid(DistilledSet.open(path), grid)}", err=True)


@cli.command()
@click.argument("source", type=click.Path(file_okay=False, path_type=Path))
@root_option
def merge(source, root):
    """Copy into the root what SOURCE (another root: a GPU machine's, a cluster node's) recorded and the
    root lacks: runs, with their distilled sets from SOURCE/runs, and evaluations, matched by identity."""
    from distillbench import atomic
    from distillbench.store import Store
    if not (source / "results.sqlite").is_file():
        raise UsageError(f"{source} holds no results store (results.sqlite); pass the --root of the runs to merge")

    def run_path(run_id: str, recorded: Path) -> Path:
        found, dest = source / "runs" / run_id, root / "runs" / run_id
        if not found.is_dir():
            click.echo(f"  {run_id}: its set is not under {source / 'runs'}; the record keeps {recorded}", err=True)
            return recorded
        if not dest.exists():
            atomic.copy_tree(found, dest)
        return dest

    runs, evaluations = Store(root).merge(Store(source), run_path)
    click.echo(f"merged {runs} runs and {evaluations} evaluations from {source} into {root}")


@cli.command()
@click.argument("name")
def download(name):
    """Fetch published weights into their library's cache, once (loading never downloads): torchvision:NAME[.WEIGHTS],
    timm:NAME, or a Hugging Face Hub id such as facebook/DiT-XL-2-256."""
    from distillbench.published import download as fetch
    click.echo(f"{name}: {fetch(name)}")


@cli.command()
@click.option("--all", "resumable", is_flag=True,
              help="Also delete unfinished work that its command would resume (partial sets, student checkpoints).")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@root_option
def clean(resumable, dry_run, root):
    """Delete what killed processes left under the root: lock files nobody holds, scratch folders no run
    needs, temporary files of interrupted writes.  Resumable work is listed and kept unless --all."""
    from distillbench import cleanup
    with cleanup.holding(root):
        found = cleanup.leftovers(root)
        removed = [] if dry_run else cleanup.remove(found, resumable)
    for item in found:
        kept = item.resumable and not resumable
        verb = "kept (--all deletes it)" if kept else "would delete" if dry_run else "deleted"
        click.echo(f"{verb}: {item.path}: {item.why}")
    click.echo(f"{len(removed)} of {len(found)} leftovers deleted under {root}" if found else
               f"nothing left over under {root}")


def main(argv=None):
    try:
        loaded = get_plugins()
    except DistillbenchError as exc:
        say_error(str(exc))
        sys.exit(exc.exit_code)
    loaded.register_commands(cli)
    try:
        code = cli.main(args=argv, prog_name="distillbench", standalone_mode=False)
    except click.UsageError as exc:  # missing or malformed flags: one line, like our own usage errors
        where = f"`{exc.ctx.command_path} --help`" if exc.ctx else "`distillbench --help`"
        say_error(f"{exc.format_message()} (see {where})")
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:  # Ctrl-C: click turns KeyboardInterrupt into Abort
        say_error("interrupted; what was finished is kept, and the same command resumes from there")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
