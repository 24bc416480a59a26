"""``distillbench d3hr ...``: train-backbone and generate (from a stats file alone); parse, call, print."""
from pathlib import Path

import click

from distillbench.api import data_options, device_option, root_option, seed_option


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
        from distillbench.api import (build_options, cached_backbone_dir, parse_pairs, pipeline_folder, registry,
                                      resolve_device)
        from distillbench_d3hr.training import BackboneConfig, train_backbone
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
