"""One distillation end to end: resolve names, check inputs, run the units, record; and find a set to evaluate."""
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from distillbench import distributed
from distillbench.checksum import json_digest
from distillbench.datasets import DataSource
from distillbench.distilled import FULL_METHOD, DistilledSet, FullTrainingSet
from distillbench.errors import UsageError
from distillbench.method import RunContext, options_dict
from distillbench.paths import file_name
from distillbench.plugins import get_plugins, registry
from distillbench.provenance import versions
from distillbench.runner import run_units
from distillbench.store import Store


@dataclass
class RunConfig:
    method: str
    dataset: str
    ipc: int
    seed: int = 0
    device: str = "cpu"  # a resolved torch device (see distillbench.device.resolve_device)
    options: dict = field(default_factory=dict)
    root: Path = Path("distillbench-runs")
    data: DataSource = field(default_factory=DataSource)


def run_id_for(cfg: RunConfig, options: dict, train_fingerprint: str, models: dict) -> str:
    """dataset-method-ipc-seed and a hash of the options, the training data and the models' checksums: a run
    resumes only from work done on the same inputs (not, say, before --skip-bad-images changed the image
    list or a backbone was retrained)."""
    digest = json_digest({"options": options, "train": train_fingerprint, "models": models})[:8]
    return f"{file_name(cfg.dataset)}-{cfg.method}-ipc{cfg.ipc}-seed{cfg.seed}-{digest}"


def check_ipc(ipc: int, train, dataset: str, bounded: bool = True) -> None:
    """IPC must be at least 1 and, for methods that pick real images, at most the smallest class."""
    if not bounded:
        if ipc < 1:
            raise UsageError(f"--ipc {ipc} is out of range: it must be at least 1")
        return
    counts = train.class_counts()
    smallest = min(counts)
    if ipc < 1 or ipc > smallest:
        raise UsageError(f"--ipc {ipc} is out of range for '{dataset}': choose 1..{smallest} "
                         f"(its smallest class, '{train.class_names[counts.index(smallest)]}', "
                         f"has {smallest} training images)")


def distill(cfg: RunConfig):
    """Distill (or resume, or reuse) the run; return (run_id, DistilledSet)."""
    method_cls = registry("method").get(cfg.method)
    spec = registry("dataset").get(cfg.dataset)
    chosen = method_cls.from_overrides(cfg.options)
    method = chosen.for_dataset(spec)
    from_recipe = sorted(key for key in method.recipe(spec) if getattr(chosen.options, key) is None)
    train = method.training_set(lambda: cfg.data.load(spec, "train", cfg.device))
    check_ipc(cfg.ipc, train, cfg.dataset, bounded=method.draws_real_images)
    options = options_dict(method)
    fingerprint = train.fingerprint()
    models = method.model_fingerprints(spec, train.num_classes)
    run_id = run_id_for(cfg, options, fingerprint, models)
    plugin, plugin_version = get_plugins().version_of("method", cfg.method)
    ctx = RunContext(spec=spec, train=train, ipc=cfg.ipc, seed=cfg.seed, device=cfg.device,
                     scratch=cfg.root / "scratch" / run_id, shared=cfg.root / "scratch" / "shared")
    manifest = {
        "run_id": run_id, "method": cfg.method, "options": options,
        "option_defaults": options_dict(method_cls().for_dataset(spec)), "options_from_recipe": from_recipe,
        "dataset": cfg.dataset, "ipc": cfg.ipc, "seed": cfg.seed, "device": cfg.device,
        "world_size": distributed.world_size(),
        "plugin": {"name": plugin, "version": plugin_version},
        "versions": versions(), "inputs": {"train_fingerprint": fingerprint, "models": models,
                   "skipped_images": len(train.skipped), "skipped_files": train.skipped[:100],
                   "decoder": train.decoder},
        "command": sys.argv, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    distilled = run_units(method, ctx, cfg.root / "runs" / run_id, manifest)
    if distributed.is_main():
        Store(cfg.root).record_run(run_id, distilled.path, distilled.manifest)
    return run_id, distilled


def find_distilled(target: str, root: Path, dataset=None, data: DataSource = DataSource()):
    """A recorded run id, a finished set's folder, any ImageFolder (then ``dataset`` is needed), a Hugging Face
    dataset ``hf:PATH_OR_HUB_ID`` (:mod:`distillbench.hf`), or ``full``: the dataset's whole training split (the
    full-data reference)."""
    if target == FULL_METHOD:
        if dataset is None:
            raise UsageError("evaluating 'full' (the whole training set) needs --dataset")
        spec = registry("dataset").get(dataset)
        return FullTrainingSet(spec, data.load(spec, "train"))
    if target.startswith("hf:"):
        from distillbench.hf import import_set
        return import_set(target, root, registry("dataset").get(dataset) if dataset else None)
    recorded = Store(root).run(target)
    if recorded is not None:
        return DistilledSet.open(recorded[0])
    path = Path(target)
    if (path / "manifest.json").is_file():
        return DistilledSet.open(path)
    if not path.is_dir():
        raise UsageError(f"'{target}' is neither a run recorded under {root} nor a folder; "
                         "see the run ids with `distillbench show`")
    if dataset is None:
        raise UsageError(f"{path} has no manifest.json; say which dataset it distills with --dataset")
    return DistilledSet.from_imagefolder(path, registry("dataset").get(dataset))
