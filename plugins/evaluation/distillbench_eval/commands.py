"""``distillbench train-teacher`` and ``distillbench protocols``: parse, call, print."""
import click

from distillbench.api import data_options, device_option, int_list, parse_pairs, seed_option


def check_seed(path, seed, dataset: str, arch: str) -> None:
    """A cached teacher that ``--seeds`` would count as seed ``seed`` was trained with that seed."""
    import json

    from distillbench.api import UsageError
    from distillbench_eval.training import teacher_seed
    if seed is not None and json.loads(path.with_suffix(".json").read_text()).get("seed") != teacher_seed(
            seed, dataset, arch):
        raise UsageError(f"the cached teacher {path} was not trained with seed {seed}; retrain it with "
                         f"--seeds {seed} --force")


def register(cli):
    @cli.command(name="train-teacher")
    @click.option("--dataset", default="mnist5k", show_default=True)
    @click.option("--arch", default="conv3", show_default=True, help="Registered model (see `distillbench models`).")
    @click.option("--epochs", type=click.IntRange(min=1), help="Default: the teacher protocol's (200).")
    @seed_option
    @device_option
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a teacher-protocol setting.")
    @click.option("--seeds", metavar="A-B|A,B,...", help="Train one teacher per seed (e.g. 0-4, for the "
                  "five-teacher protocol); seed K > 0 is cached as ARCH@K. Default: the one of --seed.")
    @click.option("--force", is_flag=True, help="Retrain even if the cache has this teacher.")
    @data_options
    def train_teacher(dataset, arch, epochs, seed, seeds, device, overrides, force, data):
        """Train a teacher on the full training set and cache it (with accuracy, config and checksum)."""
        from distillbench.api import cache_dir, cached_teacher_path, distributed, registry, resolve_device
        from distillbench_eval.protocols import for_dataset, resolve
        from distillbench_eval.training import train_teacher
        spec, model_spec = registry("dataset").get(dataset), registry("model").get(arch)
        pairs = parse_pairs(overrides, "--set") | ({"epochs": str(epochs)} if epochs else {})
        protocol = for_dataset(resolve("teacher", pairs), spec)
        device = resolve_device(device)
        for k in int_list(seeds, "--seeds", 0, "0-4") if seeds else [None]:
            path = cached_teacher_path(cache_dir(), dataset, arch, k or 0)
            if path.is_file() and not force:
                check_seed(path, k, dataset, arch)
                click.echo(f"teacher exists: {path} (use --force to retrain)")
                continue
            result, checksum = train_teacher(spec, model_spec, data.load(spec, "train"), data.load(spec, "test"),
                                             protocol, seed if k is None else k, device, path)
            if distributed.is_main():
                click.echo(f"teacher {arch}{'' if k is None else f' seed {k}'} on {dataset}: test accuracy "
                           f"{result['final_acc'] * 100:.2f}% ({result['seconds']:.0f}s)\n  saved: {path} ({checksum})")

    @cli.command()
    @click.option("--show", "name", help="Print every setting of protocol NAME and where its source sets it.")
    @click.option("--dataset", help="With --show: the settings as they resolve for this dataset.")
    @click.option("--ipc", type=click.IntRange(min=1), default=10, show_default=True, help="With --show and --dataset.")
    @click.option("--student", default="conv3", show_default=True, help="With --show and --dataset.")
    def protocols(name, dataset, ipc, student):
        """List the named evaluation protocols, or show one."""
        from distillbench_eval.protocols import PROTOCOLS, describe
        if name is None:
            for protocol in PROTOCOLS.values():
                click.echo(f"{protocol.name:<14} v{protocol.version}  {protocol.description}")
            return
        for line in describe(name, dataset, ipc, student):
            click.echo(line)
