"""benchmarks/gpu.py, the one script of GPU figures, works before a GPU is at hand: every section runs on
the CPU at tiny sizes and reports positive rates."""
import json
import sys
from pathlib import Path

from conftest import run_command

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
    rates = [sections["d3hr"][k] for k in ("inversion_images_per_s", "inversion_one_by_one_images_per_s",
                                           "generation_images_per_s", "generation_one_by_one_images_per_s")]
    rates += [sections["group_sampling"]["eager_seconds_per_class"], sections["students"]["ours_images_per_s"],
              sections["students"]["dataloader_images_per_s"], sections["jpeg_decode"]["ratio"]]
    assert all(rate > 0 for rate in rates)
