"""The Python API: what the CLI's commands do, as functions for notebooks and scripts (``import distillbench``).

    import distillbench
    distilled = distillbench.run("sre2l", "digits", ipc=1, iterations=50)
    distillbench.evaluate(distilled, students=["conv3"], protocol="rded", overrides={"epochs": 40})
    distillbench.compare(dataset="digits")      # one row per cell: mean, std, n, p-value against the row's best
    images, labels = distillbench.load_set(distilled.manifest["run_id"])

The CLI commands ``run``, ``evaluate`` and ``compare`` call these functions and only parse and print.
"""
from typing import Callable, Iterable, Optional

from distillbench.errors import UsageError

from distillbench.paths import root_dir

DEFAULT_ROOT = None  # the CLI's: $DISTILLBENCH_ROOT, else distillbench-runs


def _source(data_dir=None, download: bool = False, skip_bad_images: bool = False, workers=None):
    from distillbench.datasets import DataSource
    return DataSource(data_dir, download, skip_bad_images, workers)


def run(method: str, dataset: str = "mnist5k", ipc: int = 10, *, seed: int = 0, device: str = "auto",
        root=DEFAULT_ROOT, data=None, **options):
    """Distill (or resume, or reuse) ``dataset`` with ``method`` at ``ipc`` images per class; the finished
    :class:`~distillbench.distilled.DistilledSet` (its ``path``; ``manifest["run_id"]``).  ``options`` are the
    method's (``iterations=50``), as ``--option`` gives them; ``data`` a :class:`~distillbench.datasets.DataSource`
    (``--data-dir`` and friends)."""
    from distillbench.device import resolve_device
    from distillbench.distillation import RunConfig
    cfg = RunConfig(method=method, dataset=dataset, ipc=ipc, seed=seed, device=resolve_device(device),
                    options={key: str(value) for key, value in options.items()}, root=root_dir(root),
                    data=data or _source())
    return distill_with_grid(cfg)


def distill_with_grid(cfg):
    """Distill (or resume, or reuse) the run of ``cfg`` (a RunConfig) and write its ``grid.png`` (one row per
    class); the DistilledSet."""
    from distillbench import distributed
    from distillbench.grid import write_grid
    from distillbench.distillation import distill
    distilled = distill(cfg)[1]
    if distributed.is_main():
        write_grid(distilled, distilled.path / "grid.png")
    return distilled


def evaluation_request(dataset: str, *, students: Iterable[str] = ("conv3",), teachers: Iterable[str] = (),
                       protocol: str = "rded", overrides: Optional[dict] = None, repeats: Optional[int] = None,
                       seed: int = 0, device: str = "auto", evaluator: str = "students", data=None):
    """The evaluation request, checked by its evaluator before any work starts."""
    from distillbench import paths
    from distillbench.device import resolve_device
    from distillbench.evaluator import EvalRequest
    from distillbench.plugins import registry
    spec = registry("dataset").get(dataset)
    for student in students:
        registry("model").get(student)
    request = EvalRequest(spec=spec, data=data or _source(), students=list(students), teachers=list(teachers),
                          protocol=protocol, overrides={k: str(v) for k, v in (overrides or {}).items()},
                          repeats=repeats, seed=seed, device=resolve_device(device), cache_dir=paths.cache_dir())
    registry("evaluator").get(evaluator)().check(request)
    return request


def evaluate(target, *, dataset: Optional[str] = None, root=DEFAULT_ROOT, evaluator: str = "students",
             again: bool = False, on_result: Optional[Callable[[dict], None]] = None, data=None, **request):
    """Evaluate ``target`` (a DistilledSet, a run id recorded under ``root``, a folder of images, or ``"full"``)
    with ``students`` under ``protocol`` (``overrides``: its settings, as ``--set`` gives them); the records, one
    per student and seed, as a pandas DataFrame.  ``request`` takes :func:`evaluation_request`'s keywords."""
    import pandas as pd

    from distillbench.distilled import DistilledSet
    from distillbench.evaluation import evaluate as run_trials
    from distillbench.distillation import find_distilled
    data = data or _source()
    distilled = target if isinstance(target, DistilledSet) else find_distilled(str(target), root_dir(root), dataset,
                                                                               data)
    request = evaluation_request(dataset or distilled.manifest["dataset"], evaluator=evaluator, data=data,
                                 **request)
    return pd.DataFrame(run_trials(distilled, root_dir(root), evaluator, request, on_result=on_result, again=again))


def results(root=DEFAULT_ROOT, dataset: Optional[str] = None, protocol: Optional[str] = None):
    """Every stored evaluation, one row per student and seed: the store's columns, the protocol's version, the
    run's resolved options and model checksums, and every field of the record (its settings, teachers,
    timings...) that is not a column already."""
    import pandas as pd

    from distillbench.store import Store
    df = Store(root_dir(root)).evaluations(dataset, protocol, with_records=True)
    records = pd.DataFrame(list(df.pop("record")), index=df.index)
    return pd.concat([df, records.drop(columns=[c for c in records if c in df])], axis=1)


def stored_evaluations(root=DEFAULT_ROOT, dataset: Optional[str] = None, protocol: Optional[str] = None,
                       with_records: bool = False):
    """The store's evaluation rows that a table is made of (``with_records``: each whole record too); a usage
    error that names what is stored when there are none."""
    from distillbench.store import Store
    store = Store(root_dir(root))
    df = store.evaluations(dataset, protocol, with_records=with_records)
    if df.empty:
        stored = store.evaluations()
        raise UsageError(f"no evaluations stored under {root_dir(root)}"
                         + (f" for dataset '{dataset}'" if dataset else "")
                         + (f" under protocol '{protocol}'" if protocol else "")
                         + (f" (stored: {', '.join(sorted(set(stored['dataset'] + ' under ' + stored['protocol'])))})"
                            if not stored.empty else "")
                         + "; run `distillbench run ... --evaluate` or `distillbench evaluate RUN` first")
    return df


def compare(root=DEFAULT_ROOT, dataset: Optional[str] = None, protocol: Optional[str] = None,
            metric: str = "final"):
    """The comparison table as numbers: one row per (row keys, method) with mean, std, n (accuracy in %, over
    seeds), the p-value of Welch's t-test against the row's best and whether ``compare`` sets it in bold.
    ``metric``: final, best or reported."""
    from distillbench import tables
    from distillbench.distilled import FULL_METHOD
    from distillbench.labels import labelled
    df = labelled(stored_evaluations(root, dataset, protocol))
    return tables.summary(df[df["method"] != FULL_METHOD], f"{metric}_acc")


def load_set(target, root=DEFAULT_ROOT, as_dataset: bool = False):
    """A distilled set (a run id recorded under ``root``, or its folder): (uint8 images [N, C, H, W], labels),
    or with ``as_dataset`` a torch Dataset of (float image in [0, 1], label) pairs."""
    from distillbench.distillation import find_distilled
    images, labels = find_distilled(str(target), root_dir(root)).load()
    if not as_dataset:
        return images, labels
    from torch.utils.data import TensorDataset
    return TensorDataset(images.float() / 255, labels)
