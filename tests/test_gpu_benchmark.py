"""benchmarks/gpu.py, the one script of GPU figures, works before a GPU is at hand: every section runs on
the CPU at tiny sizes and reports positive rates."""
import json
import sys
from pathlib import Path

from distillbench.testing import run_command

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu.py"


def test_every_section_runs_on_the_cpu_at_quick_size(tmp_path):
    out = tmp_path / "gpu.json"
    proc = run_command([sys.executable, SCRIPT, "--device", "cpu", "--quick", "--out", out])
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["quick"] and report["device"] == "cpu"
    sections = report["sections"]
    assert set(sections) == {"d3hr", "group_sampling", "students", "jpeg_decode"}
    assert not [name for name, section in sections.items() if "error" in section], sections
    for name, section in sections.items():
        rates = [v for k, v in section.items() if k.endswith(("_per_s", "_per_class"))]
        assert rates and min(rates) > 0, (name, section)
