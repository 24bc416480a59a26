"""``distillbench d3hr ...``: train-backbone, generate (from a stats file alone) and analyse (the paper's
analyses); parse, call, print."""
from pathlib import Path

import click

from distillbench.api import data_options, device_option, root_option, seed_option
from distillbench_d3hr.analyse import ANALYSES


def register(cli):
    @cli.group()
    def d3hr():
        """D3HR: backbones and regeneration from statistics."""

    @d3hr.command(name="train-backbone")
    @click.option("--dataset", default="mnist5k", show_default=True)
    @click.option("--init", help="Fine-tune from this diffusers pipeline: a folder or a Hub id in the Hugging Face "
                                 "cache (facebook/DiT-XL-2-256); its VAE, resolution and DiT architecture are kept, "
                                 "the dit_*/vae_* sizes are not used.")
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="A BackboneConfig field.")
    @device_option
    @click.option("--force", is_flag=True, help="Retrain even if the cache has a backbone for the dataset.")
    @data_options
    def train_backbone(dataset, init, overrides, device, force, data):
        """Train a VAE + class-conditional DiT on DATASET and save a pipeline folder in the cache."""
        from distillbench.api import (BackboneConfig, build_options, cached_backbone_dir, parse_pairs, pipeline_folder,
                                      registry, resolve_device, train_backbone)
        spec = registry("dataset").get(dataset)
        cfg = build_options(BackboneConfig, parse_pairs(overrides, "--set"), owner="train-backbone")
        folder = cached_backbone_dir(dataset)
        if (folder / "model_index.json").is_file() and not force:
            click.echo(f"backbone exists: {folder} (use --force to retrain)")
            return
        command = (f"distillbench d3hr train-backbone --dataset {dataset}" + "".join(f" --set {o}" for o in overrides)
                   + (f" --init {init}" if init else ""))
        init_folder = pipeline_folder(init) if init else None
        train_backbone(spec, data.load(spec, "train"), cfg, resolve_device(device), folder, init_folder, command)
        click.echo(f"backbone for {dataset}: {folder}\n  samples: {folder / 'samples.png'}")

    @d3hr.command()
    @click.option("--stats", "stats_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="A D3HR statistics file (stats.safetensors of an earlier run).")
    @click.option("--ipc", type=int, required=True)
    @seed_option
    @device_option
    @click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="A d3hr option.")
    @data_options
    @root_option
    def generate(stats_file, ipc, seed, device, options, data, root):
        """Regenerate a distilled set of any IPC from a statistics file and its backbone."""
        from distillbench.api import RunConfig, distill_and_report, parse_pairs, resolve_device
        from distillbench_d3hr.stats import read_header
        header = read_header(stats_file)
        pairs = parse_pairs(options) | {"stats": str(stats_file.resolve())}
        distill_and_report(RunConfig(method="d3hr", dataset=header["dataset"], ipc=ipc, seed=seed,
                                     device=resolve_device(device), options=pairs, root=root, data=data))

    @d3hr.command()
    @click.option("--dataset", default="mnist5k", show_default=True)
    @click.option("--ipc", type=click.IntRange(min=1), default=10, show_default=True)
    @click.option("--student", default="conv3", show_default=True, help="Student of every table (and the teacher of "
                                                                       "the cross-architecture one).")
    @click.option("--protocol", default="rded", show_default=True)
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="A protocol setting (epochs=40).")
    @click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
                  help="Students trained per set.")
    @click.option("--seeds", type=click.IntRange(min=2), default=10, show_default=True,
                  help="Distillation seeds of the robustness analysis.")
    @click.option("--normality-images", type=click.IntRange(min=4), default=100, show_default=True,
                  help="Images per class whose mapped latents the inversion analysis measures.")
    @click.option("--students", help="Comma-separated students of the cross-architecture analysis; default: every "
                                     "registered model.")
    @click.option("--storage-ipcs", default="1,10,50", show_default=True,
                  help="IPCs the storage analysis distills and regenerates from the statistics.")
    @click.option("--option", "options", multiple=True, metavar="[METHOD:]KEY=VALUE",
                  help="A d3hr option (or, as d4m:KEY=VALUE, one of D4M's in the robustness analysis).")
    @click.option("--only", help=f"Comma-separated analyses to run; default: all ({', '.join(ANALYSES)}).")
    @device_option
    @data_options
    @root_option
    def analyse(dataset, ipc, student, protocol, overrides, repeats, seeds, normality_images, students, storage_ipcs,
                options, only, device, data, root):
        """Run the D3HR paper's analyses on DATASET, each a table and a plot (resumable)."""
        from distillbench.api import UsageError, int_list, parse_pairs
        from distillbench_d3hr.analyse import Study, analyse
        names = [n.strip() for n in only.split(",")] if only else list(ANALYSES)
        unknown = sorted(set(names) - set(ANALYSES))
        if unknown:
            raise UsageError(f"--only {','.join(unknown)}: no such analysis; choose from {', '.join(ANALYSES)}")
        method_options = {}
        for pair in options:
            method, _, rest = pair.partition(":") if ":" in pair.split("=", 1)[0] else ("d3hr", "", pair)
            method_options.setdefault(method, {}).update(parse_pairs([rest], "--option"))
        study = Study(dataset=dataset, root=root, data=data, device=device, ipc=ipc, student=student,
                      protocol=protocol, overrides=parse_pairs(overrides, "--set"), repeats=repeats, seeds=seeds,
                      normality_images=normality_images,
                      students=tuple(s.strip() for s in students.split(",")) if students else (),
                      storage_ipcs=tuple(int_list(storage_ipcs, "--storage-ipcs", 1, "1,10,50")),
                      method_options=method_options)
        for name, path in analyse(study, names).items():
            click.echo(f"{name}: {path} (table), {path.with_suffix('.png')} (plot)")
