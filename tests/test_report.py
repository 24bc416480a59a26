"""`distillbench report`: a static HTML page whose every image and link resolves, with the comparison table,
plots, DD-Ranking scores, the methods' grids side by side and each run's provenance."""
from html.parser import HTMLParser
from pathlib import Path

from distillbench.testing import invoke

FAST = ["--set", "epochs=2", "--set", "eval_every=1", "--set", "eval_after=0", "--repeats", "2"]


class Page(HTMLParser):
    """The page's images, links, ids, headings and table cells."""

    def __init__(self):
        super().__init__()
        self.images, self.links, self.ids, self.headings, self.cells = [], [], set(), [], []
        self._in = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.ids.update([attrs["id"]] if "id" in attrs else [])
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        self._in = (tag, attrs.get("class"))

    def handle_data(self, data):
        if self._in and self._in[0] in ("h2", "h3", "h4"):
            self.headings.append(data.strip())
        if self._in and self._in[0] == "td":
            self.cells.append((data.strip(), self._in[1]))

    def handle_endtag(self, tag):
        self._in = None


def test_the_report_page_holds_the_results_and_every_reference_resolves(model_cache, root):
    env = {"DISTILLBENCH_CACHE": str(model_cache)}
    for method in (["--method", "random"], ["--method", "sre2l", "--option", "iterations=2"]):
        for protocol in ("rded", "hard-label"):
            result = invoke("run", *method, "--dataset", "digits", "--ipc", "2", "--evaluate", "--protocol",
                            protocol, *FAST, "--root", root, env=env)
            assert result.exit_code == 0, result.output
    assert invoke("evaluate", "full", "--dataset", "digits", "--protocol", "hard-label", *FAST, "--root", root,
                  env=env).exit_code == 0
    made = invoke("report", "--root", root, "--out", root / "page", env=env)
    assert made.exit_code == 0, made.output
    index = root / "page" / "index.html"
    page = Page()
    page.feed(index.read_text())
    overrides = "[epochs=2,eval_after=0.0,eval_every=1]"  # evaluations changing settings have rows of their own
    assert {f"digits / hard-label{overrides}", f"digits / rded{overrides}", "Runs"} <= set(page.headings)
    assert "DD-Ranking (w = 0.5; accuracies as fractions)" in page.headings and "IPC 2" in page.headings
    for src in page.images:
        assert (index.parent / src).is_file() and (index.parent / src).read_bytes()[:4] == b"\x89PNG", src
    grids = [src for src in page.images if src.startswith("grids/")]
    assert len(set(grids)) == 2 and len(page.images) == 2 + 2 * 2  # two plots, each method's grid per protocol
    for link in page.links:
        assert link.lstrip("#") in page.ids if link.startswith("#") else (index.parent / link).exists(), link
    run_ids = {Path(p).parent.name for p in (root / "runs").glob("*/manifest.json")}
    assert run_ids <= page.ids  # each run's provenance, linked from its grid
    marked = [text for text, kind in page.cells if kind == "marked"]
    assert marked and all("±" in text for text in marked)
    assert invoke("report", "--root", root / "empty", env=env).exit_code == 2
