"""``distillbench train-teacher``: train a teacher on the full training split into the cache."""
import click

from distillbench.cli import data_options, seed_option
from distillbench.options import parse_pairs


def train_teacher(dataset, arch, epochs, seed, device, overrides, force, data):
    import torch

    from distillbench import distributed, paths
    from distillbench.checksum import json_digest
    from distillbench.method import derive_seed
    from distillbench.plugins import registry
    from distillbench.run import resolve_device
    from distillbench_eval.evaluator import normalizer
    from distillbench_eval.protocols import for_dataset, resolve
    from distillbench_eval.teachers import cached_teacher_path, save_teacher
    from distillbench_eval.training import Checkpoint, train_model

    spec = registry("dataset").get(dataset)
    model_spec = registry("model").get(arch)
    path = cached_teacher_path(paths.cache_dir(), dataset, arch)
    if path.is_file() and not force:
        click.echo(f"teacher exists: {path} (use --force to retrain)")
        return path
    pairs = parse_pairs(overrides, "--set") | ({"epochs": str(epochs)} if epochs else {})
    protocol = for_dataset(resolve("teacher", pairs), spec)
    device = resolve_device(device)
    distributed.init(device)
    train, test = data.load(spec, "train"), data.load(spec, "test")
    seed = derive_seed(seed, f"teacher/{dataset}/{arch}") % 2**31
    torch.manual_seed(seed)
    model = model_spec.build(train.num_classes, spec.image_size)
    settings = protocol.settings
    inputs = {"protocol": protocol.resolved(), "seed": seed, "train_fingerprint": train.fingerprint()}
    checkpoint = Checkpoint(path.with_name(f"{path.stem}-{json_digest(inputs)[:16]}.checkpoint.pt"))
    result = train_model(model, (train.load(torch.arange(len(train))), train.targets),
                         (test.load(torch.arange(len(test))), test.targets), settings,
                         batch_size=settings.batch_size, lr=settings.lr, normalize=normalizer(spec, settings, device),
                         device=device, seed=seed, name=f"teacher {arch}", checkpoint=checkpoint)
    meta = {"arch": arch, "dataset": dataset, "num_classes": train.num_classes, "image_size": spec.image_size,
            "normalization": settings.normalization, "accuracy": result["final_acc"], **inputs}
    if not distributed.is_main():
        return path
    checksum = save_teacher(path, model.cpu(), meta)
    checkpoint.path.unlink(missing_ok=True)
    click.echo(f"teacher {arch} on {dataset}: test accuracy {result['final_acc'] * 100:.2f}% "
               f"({result['seconds']:.0f}s)\n  saved: {path} ({checksum})")
    return path


def register(cli):
    @cli.command(name="train-teacher")
    @click.option("--dataset", default="mnist5k", show_default=True)
    @click.option("--arch", default="conv3", show_default=True, help="Registered model (see `distillbench models`).")
    @click.option("--epochs", type=click.IntRange(min=1), help="Default: the teacher protocol's (200).")
    @seed_option
    @click.option("--device", default="auto", show_default=True)
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a teacher-protocol setting.")
    @click.option("--force", is_flag=True, help="Retrain even if the cache has this teacher.")
    @data_options
    def train_teacher_cmd(**kwargs):
        """Train a teacher on the full training set and cache it (with accuracy, config and checksum)."""
        train_teacher(**kwargs)

    @cli.command()
    def protocols():
        """List the named evaluation protocols."""
        from distillbench_eval.protocols import PROTOCOLS
        for protocol in PROTOCOLS.values():
            click.echo(f"{protocol.name:<14} v{protocol.version}  {protocol.description}")
