"""``distillbench d3hr ...``: train-backbone and generate (from a stats file alone)."""
from pathlib import Path

import click

from distillbench.cli import data_options, root_option, seed_option


def train_backbone(dataset, init, overrides, device, force, data):
    import torch

    from distillbench import atomic
    from distillbench.distilled import png_bytes
    from distillbench.options import build, parse_pairs
    from distillbench.plugins import registry
    from distillbench.run import resolve_device
    from distillbench_d3hr import __version__
    from distillbench_d3hr.backbone import Backbone, cached_backbone_dir
    from distillbench_d3hr.training import (BackboneConfig, build_dit, build_vae, fine_tune_start, latent_moments,
                                            sample_grid, save_pipeline, train_dit, train_vae)

    spec = registry("dataset").get(dataset)
    cfg = build(BackboneConfig, parse_pairs(overrides, "--set"), owner="train-backbone")
    folder = cached_backbone_dir(dataset)
    if (folder / "model_index.json").is_file() and not force:
        click.echo(f"backbone exists: {folder} (use --force to retrain)")
        return folder
    device = resolve_device(device)
    train = data.load(spec, "train")
    images = (train.load(torch.arange(len(train))).float() / 127.5 - 1).to(device)
    labels = train.targets.to(device)
    torch.manual_seed(cfg.seed)
    source = Backbone.load(Path(init), device) if init else None
    vae = source.vae if source else train_vae(build_vae(cfg, spec.image_size).to(device), images, cfg, _progress)
    means, stds = latent_moments(vae, images, source.image_size if source else spec.image_size)
    if source is None:  # as Stable Diffusion's 0.18215: scaled latents of unit variance
        vae.register_to_config(scaling_factor=1 / float((means.var() + stds.pow(2).mean()).sqrt()))
    scale = vae.config.scaling_factor
    dit = (fine_tune_start(source.transformer, train.num_classes) if source
           else build_dit(cfg, means.shape[-1], train.num_classes)).to(device)
    ema = train_dit(dit.requires_grad_(True), means, stds, labels, scale, cfg, _progress)
    info = {"dataset": dataset, "num_classes": train.num_classes, "image_size": spec.image_size,
            "config": cfg.__dict__, "init": _init_record(source), "scaling_factor": scale,
            "train_fingerprint": train.fingerprint(), "plugin_version": __version__,
            "command": f"distillbench d3hr train-backbone --dataset {dataset}"
                       + "".join(f" --set {o}" for o in overrides) + (f" --init {init}" if init else "")}
    save_pipeline(folder, ema, vae.requires_grad_(False), info)
    grid = sample_grid(Backbone.load(folder, device), train.num_classes, 10, spec.image_size, 4.0, cfg.seed)
    atomic.write_bytes(folder / "samples.png", png_bytes(grid))
    click.echo(f"backbone for {dataset}: {folder}\n  samples: {folder / 'samples.png'}")
    return folder


def _init_record(source):
    """Where a fine-tune started: the init's path, checksum and own record (its command and config,
    and so on back along a chain of fine-tunes)."""
    if source is None:
        return None
    from distillbench_d3hr.backbone import weights_fingerprint
    return {"path": str(source.path), "fingerprint": weights_fingerprint(source.path), "info": source.info()}


def _progress(iterable, desc, total):
    from tqdm.auto import tqdm
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


def register(cli):
    @cli.group()
    def d3hr():
        """D3HR: backbones and regeneration from statistics."""

    @d3hr.command(name="train-backbone")
    @click.option("--dataset", default="mnist5k", show_default=True)
    @click.option("--init", type=click.Path(exists=True, file_okay=False, path_type=Path),
                  help="Fine-tune from this diffusers pipeline folder (e.g. DiT-XL-2-256): its VAE, resolution "
                       "and DiT architecture are kept; the dit_*/vae_* sizes are not used.")
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="A BackboneConfig field.")
    @click.option("--device", default="auto", show_default=True)
    @click.option("--force", is_flag=True, help="Retrain even if the cache has a backbone for the dataset.")
    @data_options
    def train_backbone_cmd(**kwargs):
        """Train a VAE + class-conditional DiT on DATASET and save a pipeline folder in the cache."""
        train_backbone(**kwargs)

    @d3hr.command()
    @click.option("--stats", "stats_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="A D3HR statistics file (stats.safetensors of an earlier run).")
    @click.option("--ipc", type=int, required=True)
    @seed_option
    @click.option("--device", default="auto", show_default=True)
    @click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="A d3hr option.")
    @data_options
    @root_option
    def generate(stats_file, ipc, seed, device, options, data, root):
        """Regenerate a distilled set of any IPC from a statistics file and its backbone."""
        from distillbench.cli import distil_and_report
        from distillbench.options import parse_pairs
        from distillbench.run import RunConfig
        from distillbench_d3hr.stats import read_header
        header = read_header(stats_file)
        pairs = parse_pairs(options) | {"stats": str(stats_file.resolve())}
        distil_and_report(RunConfig(method="d3hr", dataset=header["dataset"], ipc=ipc, seed=seed, device=device,
                                    options=pairs, root=root, data=data))
