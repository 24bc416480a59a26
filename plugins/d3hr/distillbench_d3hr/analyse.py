"""``distillbench d3hr analyse``: the D3HR paper's analyses, each a table and a plot, on any dataset.

Every set is distilled by the same runner and every student trained through the same store as ``run`` and
``evaluate`` do, so a finished run or stored evaluation is reused and an interrupted analysis resumes where it
stopped.  Each analysis writes ``NAME.md`` (its table, with what the paper reports for the same analysis on
ImageNet-1K beside it), ``NAME.csv`` and ``NAME.png`` under ``ROOT/analyses/d3hr/DATASET/``.
"""
import io
from dataclasses import dataclass, field
from pathlib import Path

from distillbench.api import atomic, file_name

ABLATION = {  # Table 3's rows: the d3hr options that make each
    "Base-DDPM": {"mapping": "ddpm", "sampling": "random"},
    "Base-RS": {"sampling": "random"},
    "+ L_mu": {"score": "mean"},
    "+ L_mu + L_sigma": {"score": "mean_std"},
    "D3HR": {},
}
PAPER_INVERSION_POINTS = (20, 31, 40)  # of the paper's 50-step grid
SIGMA_SCALES = (0.5, 1.0, 1.5)


@dataclass
class Study:
    """What every analysis of one ``analyse`` call shares: the data, the cell (IPC, student, protocol) and the
    methods' options."""

    dataset: str
    root: Path
    data: object
    device: str = "auto"
    ipc: int = 10
    student: str = "conv3"
    protocol: str = "rded"
    overrides: dict = field(default_factory=dict)
    repeats: int = 3
    seeds: int = 10
    normality_images: int = 100
    students: tuple = ()  # cross-architecture: () for every registered model
    storage_ipcs: tuple = (1, 10, 50)
    method_options: dict = field(default_factory=dict)  # method -> {key: value}

    @property
    def folder(self) -> Path:
        return Path(self.root) / "analyses" / "d3hr" / file_name(self.dataset)

    def distill(self, method: str = "d3hr", ipc=None, seed: int = 0, **options):
        from distillbench.api import run
        return run(method, self.dataset, ipc or self.ipc, seed=seed, device=self.device, root=self.root,
                   data=self.data, **{**self.method_options.get(method, {}), **options})

    def accuracies(self, distilled, students=None, **overrides):
        """Final accuracies in %, one per student and evaluation seed (stored ones reused)."""
        from distillbench.api import evaluate
        records = evaluate(distilled, students=list(students or [self.student]), protocol=self.protocol,
                           overrides={**self.overrides, **overrides}, repeats=self.repeats, root=self.root,
                           data=self.data, device=self.device)
        return records.assign(accuracy=records["final_acc"] * 100)

    def d3hr_options(self):
        """The d3hr options of the study's runs, the recipe's filled in."""
        from distillbench.api import registry
        from distillbench_d3hr.method import D3HR
        spec = registry("dataset").get(self.dataset)
        return D3HR.from_overrides(self.method_options.get("d3hr", {})).for_dataset(spec).options


def spread(values) -> dict:
    """mean, std (population, as `compare` reports it; none for one value) and n of ``values``."""
    import numpy as np
    values = np.asarray(list(values), dtype=float)
    return {"mean": values.mean(), "std": values.std() if len(values) > 1 else np.nan, "n": len(values)}


# -- the analyses: each returns its table (a DataFrame) and draws its plot on the axes it is given ------------

def ablation(study: Study):
    """Table 3: Base-DDPM (DDPM noising, random sampling), Base-RS (DDIM inversion, random sampling), then the
    group score's terms added one by one."""
    import pandas as pd
    rows = []
    for variant, options in ABLATION.items():
        distilled = study.distill(**options)
        rows.append({"variant": variant, "run_id": distilled.manifest["run_id"],
                     **spread(study.accuracies(distilled)["accuracy"])})
    return pd.DataFrame(rows), lambda ax, df: means(ax, df, "variant")


def inversion(study: Study):
    """The inversion-step trade-off: where inversion stops (the paper's T = 20, 31, 40 of 50, scaled to the grid
    in use), how Gaussian the class latents are there, how well they map back, and the students' accuracy."""
    import pandas as pd
    n = study.d3hr_options().num_inference_steps
    points = {paper: round((paper - 1) * n / 50) + 1 for paper in PAPER_INVERSION_POINTS}
    measures = inversion_measures(study, sorted(set(points.values())))
    rows = [{"paper_T": "VAE latents", "inversion_steps": 1, "t": 0, **measures[1]}]
    for paper, k in points.items():
        distilled = study.distill(inversion_steps=k)
        rows.append({"paper_T": paper, "inversion_steps": k, "t": (1000 // n) * (k - 1), **measures[k],
                     **spread(study.accuracies(distilled)["accuracy"])})
    return pd.DataFrame(rows), inversion_plot


def variance(study: Study):
    """Variance scaling: groups drawn from (and scored against) the class Gaussian with its std scaled."""
    import pandas as pd
    rows = []
    for scale in SIGMA_SCALES:
        distilled = study.distill(sigma_scale=scale)
        rows.append({"sigma_scale": scale, **spread(study.accuracies(distilled)["accuracy"])})
    return pd.DataFrame(rows), lambda ax, df: means(ax, df, "sigma_scale")


def robustness(study: Study):
    """D3HR and D4M over ``seeds`` distillation seeds: the spread of the seeds' mean accuracies, and Welch's
    t-test of each method's seeds against D3HR's."""
    import pandas as pd

    from distillbench.api import welch_p
    rows, seeds = [], {}
    for method in ("d3hr", "d4m"):
        per_seed = seeds[method] = [study.accuracies(study.distill(method, seed=seed))["accuracy"].mean()
                                    for seed in range(study.seeds)]
        rows.append({"method": method, **spread(per_seed), "min": min(per_seed), "max": max(per_seed),
                     "welch_p_vs_d3hr": welch_p(per_seed, seeds["d3hr"]) if method != "d3hr" else None,
                     "per_seed": " ".join(f"{a:.2f}" for a in per_seed)})
    return pd.DataFrame(rows), lambda ax, df: means(ax, df, "method", points=list(seeds.values()))


def storage(study: Study):
    """Bytes of the distilled images against the statistics (plus the backbone) that regenerate any IPC; each
    IPC regenerated from the statistics of the ``ipc`` run alone, and compared with the set distilled directly."""
    import pandas as pd
    import torch

    from distillbench.api import find_backbone, load_set
    from distillbench_d3hr.stats import STATS_FILE
    stats = study.distill().path / STATS_FILE
    backbone = find_backbone(study.dataset, study.d3hr_options().backbone)
    rows = []
    for ipc in study.storage_ipcs:
        direct = study.distill(ipc=ipc)
        regenerated = study.distill(ipc=ipc, stats=str(stats))
        images, _ = load_set(direct.path)
        again, _ = load_set(regenerated.path)
        rows.append({"ipc": ipc, "png_bytes": folder_bytes(direct.path, "*.png", exclude="grid.png"),
                     "raw_bytes": images.numel(), "stats_bytes": stats.stat().st_size,
                     "backbone_bytes": folder_bytes(backbone, "*"),
                     "regenerated_identical": bool(torch.equal(images, again))})
    return pd.DataFrame(rows), storage_plot


def cross_arch(study: Study):
    """One D3HR set, every registered student (or ``students``), each taught by the ``student``'s teacher."""
    import pandas as pd

    from distillbench.api import registry
    students = list(study.students) or registry("model").names()
    records = study.accuracies(study.distill(), students=students, teacher_arch=study.student)
    rows = [{"student": name, **spread(group["accuracy"])} for name, group in records.groupby("student", sort=False)]
    return pd.DataFrame(rows), lambda ax, df: means(ax, df, "student", rotate=True)


# -- measurements and plumbing ----------------------------------------------------------------------------------

def inversion_measures(study: Study, points: list) -> dict:
    """Per grid point (and 1: the VAE latents), averaged over the classes: normality of the first
    ``normality_images`` latents of each class mapped there, and their round trip back to t = 0."""
    import torch

    from distillbench.api import (Backbone, ddim_grid, derive_seed, distributed, find_backbone, guided, invert,
                                  registry, resolve_device, sample)
    from distillbench_d3hr.normality import normality, relative_error
    o = study.d3hr_options()
    backbone = Backbone.load(find_backbone(study.dataset, o.backbone), resolve_device(study.device), o.amp)
    train = study.data.load(registry("dataset").get(study.dataset), "train")
    source = train.at_size(backbone.image_size)
    grid = ddim_grid(o.num_inference_steps)
    alphas = backbone.alphas_cumprod[grid].tolist()
    per_point = {k: [] for k in [1, *points]}
    for label in distributed.progress(range(train.num_classes), "normality and round trips", train.num_classes):
        index = train.indices_of(label)[: study.normality_images]
        generator = torch.Generator(device=backbone.device).manual_seed(derive_seed(0, f"normality/{label}"))
        z0 = torch.cat([backbone.encode(images, generator, o.encode) for images in source.batches(index, o.batch_size)])
        labels = torch.full((len(z0),), label, device=z0.device, dtype=torch.long)
        eps = guided(backbone.eps, labels, backbone.null_label, o.guidance if o.invert_guided else 1.0)
        back = guided(backbone.eps, labels, backbone.null_label, o.guidance)
        per_point[1].append({**normality(z0), "round_trip_error": 0.0})
        z, at = z0, 1
        for k in points:
            z = invert(eps, z, grid[at - 1:k], alphas[at - 1:k])
            at = k
            z_back = sample(back, z, grid[:k][::-1], alphas[:k][::-1])
            per_point[k].append({**normality(z), "round_trip_error": relative_error(z_back, z0)})
    return {k: {key: sum(m[key] for m in ms) / len(ms) for key in ms[0]} for k, ms in per_point.items()}


def folder_bytes(folder: Path, pattern: str, exclude: str = "") -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob(pattern) if p.is_file() and p.name != exclude)


def means(ax, df, key: str, points=(), rotate: bool = False):
    """Each row's mean accuracy ± std as a point (on an axis fitted to them, so that differences of a point
    show), with the single values of ``points[i]`` beside row i."""
    x = range(len(df))
    ax.errorbar(x, df["mean"], yerr=df["std"].fillna(0), fmt="o", capsize=4, color="C0", label="mean ± std")
    for i, values in enumerate(points):
        ax.plot([i + 0.12] * len(values), values, ".", color="C1", alpha=0.7, label="per seed" if i == 0 else None)
    if points:
        ax.legend(fontsize="small")
    ax.set_xticks(list(x), labels=df[key].astype(str))
    ax.set(xlabel=key, ylabel="accuracy (%)", xlim=(-0.5, len(df) - 0.5))
    if rotate:
        ax.tick_params(axis="x", labelrotation=60)
    ax.grid(axis="y", alpha=0.3)


def inversion_plot(ax, df):
    measured = df[df["t"] > 0]
    for column, style in (("abs_skewness", "o-"), ("abs_excess_kurtosis", "s-"), ("round_trip_error", "^-")):
        ax.plot(df["t"], df[column], style, label=column.replace("_", " "))
    ax.set(xlabel="inversion timestep t", ylabel="normality / round-trip error")
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.errorbar(measured["t"], measured["mean"], yerr=measured["std"].fillna(0), fmt="D--", color="C3", capsize=3,
                  label="accuracy (%)")
    twin.set_ylabel("accuracy (%)")
    ax.legend(loc="upper left", fontsize="small")
    twin.legend(loc="upper right", fontsize="small")


def storage_plot(ax, df):
    width = 0.25
    x = range(len(df))
    for i, (column, label) in enumerate((("png_bytes", "distilled images (PNG)"), ("stats_bytes", "statistics"),
                                         ("backbone_bytes", "backbone"))):
        ax.bar([p + (i - 1) * width for p in x], df[column], width, label=label)
    ax.set_xticks(list(x), labels=[f"IPC {ipc}" for ipc in df["ipc"]])
    ax.set(yscale="log", ylabel="bytes")
    ax.legend(fontsize="small")


def write_outputs(study: Study, name: str, df, draw, paper: str) -> Path:
    """``NAME.md`` (the paper's figures, then the table), ``NAME.csv`` and ``NAME.png``; the markdown's path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    folder = study.folder
    table = df.to_markdown(index=False, floatfmt=".4g", missingval="")
    atomic.write_bytes(folder / f"{name}.md", f"# {name}: {study.dataset}, IPC {study.ipc}, {study.student}, "
                                              f"{study.protocol}\n\n{paper}\n\n{table}\n".encode())
    atomic.write_bytes(folder / f"{name}.csv", df.to_csv(index=False).encode())
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    draw(ax, df)
    ax.set_title(f"{name} ({study.dataset}, IPC {study.ipc})")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic.write_bytes(folder / f"{name}.png", buffer.getvalue())
    return folder / f"{name}.md"


ANALYSES = {"ablation": ablation, "inversion": inversion, "variance": variance, "robustness": robustness,
            "storage": storage, "cross_arch": cross_arch}


def analyse(study: Study, names=tuple(ANALYSES)) -> dict:
    """Run the analyses ``names`` in order; each one's markdown path."""
    from distillbench_d3hr.paper import ANALYSES_REPORTED
    done = {}
    for name in names:
        df, draw = ANALYSES[name](study)
        done[name] = write_outputs(study, name, df, draw, ANALYSES_REPORTED[name])
    return done
