"""Paper-style tables and plots from the store's evaluation rows.

Rows are student x IPC (prefixed by dataset/protocol when several are
present), columns are methods, cells are ``mean ± std`` of the accuracy (%)
over seeds.
"""
from pathlib import Path

from distillbench import atomic
from distillbench.distilled import FULL_METHOD
from distillbench.labels import labelled

FORMATS = ("markdown", "latex", "csv")
PLOT_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg", ".jpg": "jpeg", ".jpeg": "jpeg"}


def row_keys(df) -> list[str]:
    return [k for k in ("dataset", "protocol") if df[k].nunique() > 1] + ["student", "ipc"]


ALPHA = 0.05  # Welch's t-test level at which a cell counts as distinguishable from its row's best
MARKED = ("Bold: each row's best mean and every cell that Welch's t-test over seeds (two-sided, alpha = 0.05) "
          "cannot tell from it; a cell of one seed is not tested.")


def welch_p(a, b) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances) between two samples of seeds; nan when either
    has fewer than two; 1 or 0 when neither varies (equal or unequal means)."""
    import numpy as np
    from scipy import stats
    a, b = np.asarray(a, float), np.asarray(b, float)
    if min(len(a), len(b)) < 2:
        return float("nan")
    if a.var() == 0 and b.var() == 0:
        return float(a.mean() == b.mean())
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def summary(df, metric: str = "final_acc"):
    """Per (row keys, method): mean, std (population over seeds, in %), n, the p-value of Welch's t-test against
    the row's highest mean (``p_vs_best``, 1 for the best itself) and ``marked``: the best at the printed
    precision (ties all count), or not distinguishable from it at :data:`ALPHA`."""
    keys = row_keys(df)
    grouped = df.assign(acc=df[metric] * 100).groupby(keys + ["method"])["acc"]
    stats = grouped.agg(mean="mean", std=lambda s: s.std(ddof=0), n="count").reset_index()
    seeds = grouped.apply(list)
    row = [tuple(r) for r in stats[keys].itertuples(index=False)]
    measured = stats.dropna(subset=["mean"])  # a metric no record has (best_acc of old records) marks nothing
    top = measured.loc[measured.groupby(keys)["mean"].idxmax()]
    best_of = {tuple(r[keys]): r["method"] for _, r in top.iterrows()}
    stats["p_vs_best"] = [float("nan") if key not in best_of else 1.0 if method == best_of[key]
                          else welch_p(seeds[key + (method,)], seeds[key + (best_of[key],)])
                          for key, method in zip(row, stats["method"])]
    shown = stats["mean"].round(2)
    tied = shown == shown.groupby([stats[k] for k in keys]).transform("max")
    stats["marked"] = tied | (stats["p_vs_best"] >= ALPHA)
    return stats


def _cell(mean: float, std: float, n: int, most: int) -> str:
    """``mean ± std``; a cell of one seed has no spread, and one with fewer seeds than the table's
    fullest says how many it has."""
    if n == 1:
        return f"{mean:.2f} (n=1)"
    return f"{mean:.2f} ± {std:.2f}" + ("" if n == most else f" (n={n})")


def pivot(df, metric: str = "final_acc"):
    """The table as a DataFrame of ``mean ± std`` strings."""
    stats = summary(df, metric)
    most = stats["n"].max()
    stats["cell"] = [_cell(m, s, n, most) for m, s, n in zip(stats["mean"], stats["std"], stats["n"])]
    return _pivoted(stats, df, "cell", "–")


def marked_cells(df, metric: str = "final_acc"):
    """True where :func:`summary` marks a cell (its row's best, or not distinguishable from it)."""
    return _pivoted(summary(df, metric), df, "marked", False)


def _pivoted(stats, df, values: str, missing):
    table = stats.pivot(index=row_keys(df), columns="method", values=values).fillna(missing)
    table.columns.name = None
    return table


LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                 "±": r"$\pm$", "–": "--"}


def _latex(table, bold=None) -> str:
    """A booktabs tabular of ``table``; ``bold``, a frame of its shape, marks the cells set in bold."""
    import pandas as pd

    def text(value) -> str:
        return "".join(LATEX_ESCAPES.get(ch, ch) for ch in (f"{value:.3f}" if isinstance(value, float) else str(value)))

    align = "".join("r" if pd.api.types.is_numeric_dtype(table[c]) else "l" for c in table)
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(map(text, table.columns)) + r" \\", r"\midrule"]
    for i, row in enumerate(table.itertuples(index=False)):
        marks = bold.iloc[i] if bold is not None else [False] * len(row)
        lines.append(" & ".join(rf"\textbf{{{text(v)}}}" if mark else text(v) for v, mark in zip(row, marks)) + r" \\")
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"])


def _format(table, fmt: str, floatfmt: str = ".3f", bold=None) -> str:
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt == "latex":
        return _latex(table, bold)
    from tabulate import tabulate
    if bold is not None:
        table = table.mask(bold.to_numpy(dtype=bool), "**" + table.astype(str) + "**")
    return tabulate(table, headers="keys", tablefmt="pipe", showindex=False, floatfmt=floatfmt)


def render(df, fmt: str = "markdown", metric: str = "final_acc", paper=()) -> str:
    """The accuracy table, each row's best cell and those not distinguishable from it in bold (markdown and
    LaTeX), with a ``METHOD (paper)`` column per method whose published results (``paper``, PaperResult) match
    its rows, followed by the published results no row matches and by DD-Ranking's scores where their inputs
    were stored.  As CSV: one line per cell, with mean, std, n and the p-value against the row's best."""
    from distillbench import ddranking
    robustness = ddranking.ars_table(df, metric)
    df = labelled(df)
    distilled = df[df["method"] != FULL_METHOD]
    text, unmatched, published = "", list(paper), "Published, not measured here:"
    if not distilled.empty and fmt == "csv":
        text, published = summary(distilled, metric).to_csv(index=False), "Published:"
    elif not distilled.empty:
        table, bold, unmatched = marked_table(distilled, metric, paper)
        text = _format(table, fmt, bold=bold)
        text += ("\n\n" + MARKED) if fmt == "markdown" else ""
    if unmatched:
        text += f"\n\n{published}\n" + _format(published_table(unmatched), fmt, floatfmt=".2f")
    ranking = ddranking.table(df, metric)
    if not ranking.empty:
        text += "\n\nDD-Ranking (w = 0.5; accuracies as fractions):\n" + _format(ranking, fmt)
    if not robustness.empty:
        text += ("\n\nDD-Ranking's augmentation robustness (lambda = 0.5; gains over random as fractions):\n"
                 + _format(robustness, fmt))
    return text


def marked_table(df, metric: str = "final_acc", paper=()):
    """(the table of ``mean ± std`` strings with its row keys as columns and the published columns, a frame of
    its shape that is True where a cell is set in bold, the published results no row matches) of labelled
    rows without the full-data reference."""
    marked = marked_cells(df, metric)
    bold = marked.reset_index().assign(**{key: False for key in marked.index.names})
    table, unmatched = _beside(pivot(df, metric).reset_index(), df, paper)
    return table, bold.reindex(columns=table.columns, fill_value=False).astype(bool), unmatched


def _beside(table, df, paper):
    """``table`` with a ``METHOD (paper)`` column holding each published result whose dataset, protocol, student
    and IPC match a row; the results that match none."""
    keys = row_keys(df)
    fixed = {key: df[key].iloc[0] for key in ("dataset", "protocol") if key not in keys}
    unmatched = []
    for result in paper:
        where = {"dataset": result.dataset, "protocol": result.protocol, "student": result.student, "ipc": result.ipc}
        rows = (table[keys] == [where[key] for key in keys]).all(axis=1)
        if any(where[key] != value for key, value in fixed.items()) or not rows.any():
            unmatched.append(result)
            continue
        column = f"{result.method} (paper)"
        if column not in table:
            table[column] = "–"
        table.loc[rows, column] = result.cell()
    return table, unmatched


def published_table(results):
    import pandas as pd
    return pd.DataFrame([{"dataset": r.dataset, "protocol": r.protocol, "student": r.student, "ipc": r.ipc,
                          "method": r.method, "published": r.cell(), "source": r.source}
                         for r in sorted(results, key=lambda r: (r.dataset, r.student, r.ipc, r.method))])


def panels(df, metric: str = "final_acc") -> dict:
    """The plot's panels: {title: summary rows}, one panel per student (and per dataset and protocol when
    several are present), so that a line never joins accuracies measured under different protocols."""
    df = labelled(df)
    stats = summary(df, metric)
    keys = [k for k in row_keys(df) if k != "ipc"]
    return {" / ".join(map(str, key)): rows for key, rows in stats.groupby(keys)}


def plot_format(path: Path) -> str:
    """The image format that ``path``'s suffix names (see PLOT_FORMATS)."""
    from distillbench.errors import UsageError
    suffix = Path(path).suffix.lower()
    if suffix not in PLOT_FORMATS:
        raise UsageError(f"--plot {path}: '{suffix or 'no suffix'}' is not an image format I write; end the name in "
                         f"{', '.join(PLOT_FORMATS)}")
    return PLOT_FORMATS[suffix]


def plot(df, path: Path, metric: str = "final_acc") -> Path:
    """Accuracy vs IPC, one line per method in each of the :func:`panels`, written in the format that the
    file's suffix names.  A method keeps its colour in every panel, and one legend beside the panels names
    each line once."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    curves = panels(df, metric)
    methods = sorted({m for stats in curves.values() for m in stats["method"] if m != FULL_METHOD})
    colours = {method: f"C{i % 10}" for i, method in enumerate(methods)}
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.6), squeeze=False)
    for ax, (title, stats) in zip(axes[0], curves.items()):
        is_full = stats["method"] == FULL_METHOD  # the whole training set: a reference level, not a point at IPC 0
        for mean in stats.loc[is_full, "mean"]:
            ax.axhline(mean, color="gray", linestyle="--", label="whole training set")
        distilled = stats[~is_full]
        for method, rows in distilled.groupby("method"):
            rows = rows.sort_values("ipc")
            ax.errorbar(rows["ipc"], rows["mean"], yerr=rows["std"], marker="o", capsize=3, label=method,
                        color=colours[method])
        ax.set(title=title, xlabel="images per class", ylabel="accuracy (%)", xscale="log")
        ipcs = sorted(distilled["ipc"].unique())
        ax.set_xticks(ipcs, labels=[str(ipc) for ipc in ipcs])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    legend = {label: handle for ax in axes[0] for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(legend.values(), legend.keys(), loc="center left", bbox_to_anchor=(1, 0.5), fontsize="small")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=plot_format(path), dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic.write_bytes(Path(path), buffer.getvalue())
    return Path(path)
