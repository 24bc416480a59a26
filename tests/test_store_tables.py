import re

import pandas as pd
import pytest

from distillbench import store as store_module
from distillbench import labels, tables
from distillbench.store import Store
from distillbench.testing import invoke


def rows():
    out = []
    for method, accs in (("random", (0.50, 0.54)), ("d3hr", (0.70, 0.74))):
        for seed, acc in enumerate(accs):
            out.append(dict(run_id="r", method=method, dataset="digits", ipc=10, student="conv3", protocol="rded",
                            seed=seed, final_acc=acc, best_acc=acc + 0.01, seconds=1.0))
    return out


def test_store_round_trip_and_filter(tmp_path):
    store = Store(tmp_path)
    for row in rows():
        store.record_evaluation({**row, "extra": {"resolved": "config"}})
    store.record_evaluation({**rows()[0], "dataset": "other"})
    df = store.evaluations("digits")
    assert len(df) == 4 and set(df["method"]) == {"random", "d3hr"}
    store.record_run("r1", tmp_path, {"method": "random", "dataset": "digits", "ipc": 1, "seed": 0})
    assert store.run("r1")[1]["method"] == "random" and store.run_ids() == ["r1"]


def test_reading_a_root_without_a_store_finds_nothing_and_creates_nothing(tmp_path):
    store = Store(tmp_path / "typo")
    assert store.evaluations().empty and store.run_ids() == [] and store.run("r1") is None
    assert store.recorded_evaluation("a") is None and not (tmp_path / "typo").exists()
    store.record_run("r1", tmp_path, {"method": "random", "dataset": "digits", "ipc": 1, "seed": 0})
    assert store.run_ids() == ["r1"]


def test_the_latest_record_of_an_identity_counts_once(tmp_path):
    store = Store(tmp_path)
    first, second = rows()[:2]
    for row in (first, {**first, "identity": "a"}, {**second, "identity": "a", "final_acc": 0.9}):
        store.record_evaluation(row)
    df = store.evaluations("digits")
    assert len(df) == 2 and sorted(df["final_acc"]) == [0.5, 0.9]
    assert store.recorded_evaluation("a")["final_acc"] == 0.9 and store.recorded_evaluation("b") is None


def test_stores_from_before_identities_gain_the_column(tmp_path):
    import sqlite3
    old_schema = store_module.SCHEMA.replace(",\n    identity TEXT", "")
    assert "identity" not in old_schema
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        db.executescript(old_schema)
    Store(tmp_path).record_evaluation({**rows()[0], "identity": "a"})
    assert Store(tmp_path).recorded_evaluation("a")["seed"] == 0


def test_table_cells_are_mean_pm_std_over_seeds():
    table = tables.pivot(pd.DataFrame(rows()))
    assert table.loc[("conv3", 10), "random"] == "52.00 ± 2.00"
    assert table.loc[("conv3", 10), "d3hr"] == "72.00 ± 2.00"
    assert "72.00 ± 2.00" in tables.render(pd.DataFrame(rows()), "markdown")
    assert "\\toprule" in tables.render(pd.DataFrame(rows()), "latex")
    csv = tables.render(pd.DataFrame(rows()), "csv").splitlines()
    assert csv[0] == "student,ipc,method,mean,std,n,p_vs_best,marked"
    assert csv[1].startswith("conv3,10,d3hr,72.0,2.0,2,1.0,True")
    random_p = float(csv[2].split(",")[6])
    assert csv[2].startswith("conv3,10,random,52.0,2.0,2,") and random_p == pytest.approx(0.0194, abs=1e-3)
    assert tables.pivot(pd.DataFrame(rows()), "best_acc").loc[("conv3", 10), "d3hr"] == "73.00 ± 2.00"


def test_latex_sets_each_rows_best_cell_in_bold_ties_included():
    ties = [dict(row, method="rded_x", ipc=ipc) for row in rows() if row["method"] == "d3hr" for ipc in (10, 50)]
    ipc50 = [dict(row, ipc=50, final_acc=row["final_acc"] - 0.3) for row in rows()]
    latex = tables.render(pd.DataFrame(rows() + ipc50 + ties), "latex").splitlines()
    assert latex[:4] == [r"\begin{tabular}{lrlll}", r"\toprule", r"student & ipc & d3hr & random & rded\_x \\",
                         r"\midrule"]
    assert latex[4:6] == [
        r"conv3 & 10 & \textbf{72.00 $\pm$ 2.00} & 52.00 $\pm$ 2.00 & \textbf{72.00 $\pm$ 2.00} \\",
        r"conv3 & 50 & 42.00 $\pm$ 2.00 & 22.00 $\pm$ 2.00 & \textbf{72.00 $\pm$ 2.00} \\"]
    assert latex[6:] == [r"\bottomrule", r"\end{tabular}"]


def test_bold_marks_the_best_and_the_cells_welchs_t_test_cannot_tell_from_it():
    def seeds(method, *accs):
        return [dict(rows()[0], method=method, seed=seed, final_acc=acc) for seed, acc in enumerate(accs)]
    close = seeds("a", 0.80, 0.90, 0.85) + seeds("b", 0.84, 0.86, 0.85) + seeds("c", 0.60, 0.61, 0.62)
    one = seeds("d", 0.86)
    summary = tables.summary(pd.DataFrame(close + seeds("b2", 0.83, 0.84, 0.845))).set_index("method")
    assert summary.loc["a", "marked"] and summary.loc["b", "marked"] and not summary.loc["c", "marked"]
    assert summary.loc["b2", "marked"] and 0.05 < summary.loc["b2", "p_vs_best"] < 1  # lower, not significantly
    summary = tables.summary(pd.DataFrame(close + one)).set_index("method")
    assert summary.loc["d", "marked"] and summary.loc["d", "p_vs_best"] == 1.0  # the best mean, of one seed
    assert pd.isna(summary.loc["a", "p_vs_best"]) and not summary.loc["a", "marked"]  # untestable against it
    markdown = tables.render(pd.DataFrame(close), "markdown")
    assert "**85.00 ± 4.08**" in markdown and "**85.00 ± 0.82**" in markdown and "| 61.00 ± 0.82 " in markdown
    assert tables.MARKED in markdown


def test_welchs_t_test_is_scipys_and_handles_seeds_without_spread():
    from scipy.stats import t
    a, b = pd.Series([1, 2, 3, 4]), pd.Series([2, 4, 6, 9])
    se2 = a.var() / 4 + b.var() / 4  # Welch: unequal variances, Welch-Satterthwaite degrees of freedom
    df = se2**2 / ((a.var() / 4) ** 2 / 3 + (b.var() / 4) ** 2 / 3)
    assert tables.welch_p(a, b) == pytest.approx(2 * t.sf(abs(a.mean() - b.mean()) / se2**0.5, df))
    assert tables.welch_p([1, 1], [1, 1]) == 1.0 and tables.welch_p([1, 1], [2, 2]) == 0.0
    assert pd.isna(tables.welch_p([1], [1, 2]))


def test_cells_with_fewer_seeds_say_so():
    table = tables.pivot(pd.DataFrame(rows()[:3]))
    assert table.loc[("conv3", 10), "random"] == "52.00 ± 2.00"
    assert table.loc[("conv3", 10), "d3hr"] == "70.00 (n=1)"


@pytest.mark.parametrize("name, magic", [("p.png", b"\x89PNG\r\n\x1a\n"), ("p.pdf", b"%PDF"), ("p.jpg", b"\xff\xd8\xff"),
                                         ("p.JPEG", b"\xff\xd8\xff"), ("p.svg", b"<?xml")])
def test_the_plot_is_written_in_the_format_its_suffix_names(tmp_path, name, magic):
    path = tables.plot(pd.DataFrame(rows()), tmp_path / name)
    assert path.read_bytes().startswith(magic)


def test_an_unknown_plot_suffix_is_refused_before_any_work(tmp_path):
    Store(tmp_path).record_evaluation(rows()[0])
    result = invoke("compare", "--plot", tmp_path / "p.gif", "--root", tmp_path)
    assert result.exit_code == 2 and not (tmp_path / "p.gif").exists()
    assert result.stderr.strip() == (f"Error: --plot {tmp_path / 'p.gif'}: '.gif' is not an image format I write; "
                                     "end the name in .png, .pdf, .svg, .jpg, .jpeg")


def test_runs_with_other_options_get_their_own_column(tmp_path):
    store = Store(tmp_path)
    for run_id, options in (("a", {}), ("b", {"m": 10, "backbone": "/x/y/mnist5k"})):
        store.record_run(run_id, tmp_path, {"method": "d3hr-like", "dataset": "digits", "ipc": 10, "seed": 0,
                                            "options": options})
        store.record_evaluation({**rows()[2], "run_id": run_id, "method": "d3hr-like"})
    text = tables.render(store.evaluations("digits"))
    assert "| d3hr-like " in text and "d3hr-like[backbone=mnist5k, m=10]" in text


def test_runs_made_with_other_models_are_kept_apart(tmp_path):
    store = Store(tmp_path)
    for run_id, backbone in (("a", "sha256:1"), ("b", "sha256:2"), ("c", "sha256:2")):
        store.record_run(run_id, tmp_path, {"method": "d3hr-like", "dataset": "digits", "ipc": 10, "seed": 0,
                                            "options": {}, "inputs": {"models": {"backbone": backbone}}})
        store.record_evaluation({**rows()[2], "run_id": run_id, "method": "d3hr-like"})
    store.record_evaluation({**rows()[0]})
    methods = set(labels.with_variants(store.evaluations("digits"))["method"])
    assert len(methods) == 3 and "random" in methods
    assert all(method.startswith("d3hr-like@") for method in methods - {"random"})


def test_default_options_keep_the_plain_name():
    assert labels.variant("random", {"k": 1}, {"k": 1}) == "random"


def test_protocols_are_filtered_and_never_share_a_plot_line(tmp_path):
    store = Store(tmp_path)
    for row in rows():
        store.record_evaluation(row)
        store.record_evaluation({**row, "protocol": "hard-label", "final_acc": row["final_acc"] / 2})
    assert set(store.evaluations("digits", "hard-label")["protocol"]) == {"hard-label"}
    assert len(store.evaluations("digits")) == 8
    curves = tables.panels(store.evaluations("digits"))
    assert sorted(curves) == ["hard-label / conv3", "rded / conv3"]
    assert curves["hard-label / conv3"].set_index("method")["mean"].to_dict() == {"d3hr": 36.0, "random": 26.0}
    assert list(tables.panels(store.evaluations("digits", "rded"))) == ["conv3"]
    assert tables.plot(store.evaluations("digits"), tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
def figures(monkeypatch):
    """The figures that :func:`tables.plot` draws, kept open for inspection."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    kept = []
    monkeypatch.setattr(plt, "close", kept.append)
    return kept


def test_the_whole_training_set_is_a_reference_line_not_a_point(tmp_path, figures):
    full = {**rows()[0], "method": "full", "ipc": 0, "final_acc": 0.99}
    tables.plot(pd.DataFrame(rows() + [full]), tmp_path / "p.png")
    (ax,) = figures[0].axes
    assert list(ax.get_xticks()) == [10]
    assert [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"] == [99.0]


def test_a_method_keeps_its_colour_across_panels_and_is_named_once(tmp_path, figures):
    two_students = rows() + [{**row, "student": "resnet18_modified"} for row in rows() if row["method"] == "random"]
    tables.plot(pd.DataFrame(two_students), tmp_path / "p.png")
    conv3, resnet = figures[0].axes
    colour = {ax: {c.get_label(): c.lines[0].get_color() for c in ax.containers} for ax in (conv3, resnet)}
    assert set(colour[resnet]) == {"random"} and colour[resnet]["random"] == colour[conv3]["random"]
    assert colour[conv3]["d3hr"] != colour[conv3]["random"]
    (legend,) = figures[0].legends
    assert [text.get_text() for text in legend.get_texts()] == ["d3hr", "random"]


def test_records_of_another_protocol_version_never_share_a_row(tmp_path):
    store = Store(tmp_path)
    for version, acc in ((1, 0.5), (2, 0.7)):
        store.record_evaluation({**rows()[0], "final_acc": acc, "protocol_resolved": {"version": version},
                                 "identity": f"sha256:{version}"})
    text = tables.render(store.evaluations("digits"))
    assert "rded v1" in text and "rded v2" in text and "50.00" in text and "70.00" in text
    store.record_evaluation({**rows()[0], "protocol": "hard-label", "protocol_resolved": {"version": 1}})
    assert "hard-label v1" not in tables.render(store.evaluations("digits", "hard-label"))


def test_reported_accuracy_is_the_protocols_own_or_the_final(tmp_path):
    store = Store(tmp_path)
    store.record_evaluation({**rows()[0], "final_acc": 0.5, "best_acc": 0.6, "reported_acc": 0.6, "identity": "a"})
    store.record_evaluation({**rows()[1], "final_acc": 0.4, "best_acc": 0.7, "identity": "b"})  # before reported_acc
    assert sorted(store.evaluations("digits")["reported_acc"]) == [0.4, 0.6]
    result = invoke("compare", "--metric", "reported", "--root", tmp_path)
    assert result.exit_code == 0 and "50.00 ± 10.00" in result.output, result.output


def test_published_results_sit_beside_their_cells_and_the_rest_below(tmp_path):
    from distillbench.paper import PaperResult
    here = PaperResult("d3hr", "digits", "conv3", 10, 77.7, 0.4, "rded", "A Paper, Table 1")
    elsewhere = PaperResult("d3hr", "imagenet", "resnet18", 10, 44.3, None, "d3hr", "D3HR, Table A6")
    other_protocol = PaperResult("d3hr", "digits", "conv3", 10, 60.0, None, "hard-label", "A Paper, Table 2")
    text = tables.render(pd.DataFrame(rows()), paper=[here, elsewhere, other_protocol])
    table, below = text.split("Published, not measured here:")
    header = table.splitlines()[0]
    assert "d3hr (paper)" in header and "| 77.70 ± 0.40" in table.splitlines()[2]
    assert "44.30" in below and "60.00" in below and "77.70" not in below and "D3HR, Table A6" in below


def test_compare_paper_shows_the_plugins_published_rows(tmp_path):
    store = Store(tmp_path)
    for row in rows():
        store.record_evaluation(row)
    result = invoke("compare", "--paper", "--root", tmp_path)
    assert result.exit_code == 0, result.output
    assert "Published, not measured here:" in result.output
    for cell in (r"d3hr +\| resnet18 +\| +10 \| d3hr +\| +44.30 ± 0.30 \| D3HR, ICML 2025",
                 r"sre2l +\| resnet18 +\| +10 \| sre2l +\| +21.30 ± 0.60 \| SRe2L, NeurIPS 2023"):
        assert re.search(r"\| imagenet +\| " + cell, result.output)
    assert "Published" not in invoke("compare", "--root", tmp_path).output


def test_a_metric_no_record_has_leaves_its_cells_unmarked():
    missing = [dict(row, best_acc=None) for row in rows()]
    stats = tables.summary(pd.DataFrame(missing), "best_acc")
    assert stats["mean"].isna().all() and not stats["marked"].any()
