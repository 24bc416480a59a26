"""Every usage error: exit code 2 and one line that names the problem and the choices."""
import pytest

from distillbench.testing import invoke

CASES = [
    (["run", "--method", "nope", "--ipc", "1", "--dataset", "digits"], "unknown method 'nope'; choose one of:", "random"),
    (["run", "--method", "random", "--ipc", "1", "--dataset", "nope"], "unknown dataset 'nope'", "mnist5k"),
    (["run", "--method", "random", "--ipc", "0", "--dataset", "digits"], "--ipc 0 is out of range", "choose 1.."),
    (["run", "--method", "random", "--ipc", "100000", "--dataset", "digits"], "--ipc 100000 is out of range", "smallest class"),
    (["run", "--method", "random", "--ipc", "1", "--dataset", "digits", "--option", "bogus=1"],
     "unknown option 'bogus' for method 'random'", "valid keys"),
    (["run", "--method", "random", "--ipc", "1", "--dataset", "digits", "--option", "novalue"],
     "malformed --option 'novalue'", "key=value"),
    (["run", "--method", "random", "--ipc", "1", "--dataset", "mnist"], "dataset 'mnist' is read from disk", "--data-dir"),
    (["run", "--method", "random", "--ipc", "1", "--dataset", "cifar10", "--data-dir", "/nonexistent"],
     "dataset 'cifar10' not found at /nonexistent/cifar-10-batches-py", "--download"),
    (["run", "--method", "random", "--ipc", "1", "--dataset", "digits", "--evaluate", "--student", "nope"],
     "unknown model 'nope'", "choose one of"),
    (["run", "--method", "random", "--ipc", "1", "--dataset", "digits", "--device", "cuda:7"],
     "--device cuda:7 requested", None),
    (["show", "no-such-run"], "no run 'no-such-run'", "distillbench show"),
    (["evaluate", "no-such-run"], "'no-such-run' is neither a run recorded", "distillbench show"),
    (["compare"], "no evaluations stored", "--evaluate"),
]


@pytest.mark.parametrize("args,problem,hint", CASES, ids=[" ".join(c[0][:3]) + " " + c[1][:20] for c in CASES])
def test_usage_error_is_one_clear_line(args, problem, hint, root):
    result = invoke(*args, "--root", root)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and problem in lines[0]
    if hint:
        assert hint in lines[0]
    assert "Traceback" not in result.output


def test_usage_errors_leave_no_output_behind(root):
    invoke("run", "--method", "random", "--ipc", "0", "--dataset", "digits", "--root", root)
    assert not (root / "runs").exists()


@pytest.mark.parametrize("args,message", [
    (["run", "--ipc", "3"], "Error: Missing option '--method'. (see `distillbench run --help`)"),
    (["run", "--method", "random", "--ipc", "x"], "Error: Invalid value for '--ipc': 'x' is not a valid integer."),
    (["run", "--method", "random", "--ipc", "1", "--seed", str(2**64)],
     "Error: Invalid value for '--seed': 18446744073709551616 is not in the range 0<=x<=4294967295."),
    (["no-such-command"], "Error: No such command 'no-such-command'."),
    (["run", "--method", "nope", "--ipc", "1"], "Error: unknown method 'nope'; choose one of:"),
])
def test_flag_errors_are_one_line_too(args, message, tmp_path):
    from distillbench.testing import run_subprocess
    proc = run_subprocess(*args, "--root", tmp_path) if args[0] == "run" else run_subprocess(*args)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(message) and len(proc.stderr.strip().splitlines()) == 1


def test_a_path_the_file_system_refuses_is_one_line_naming_it(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = invoke("run", "--method", "random", "--ipc", "1", "--dataset", "digits", "--root", blocker / "sub")
    assert result.exit_code == 1 and "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Error: {blocker / 'sub'}") and "Not a directory; check the path" in last


def imagefolder(root, counts):
    from PIL import Image
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("L", (8, 8)).save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize("counts,problem", [
    ({"a": 1, "b": 1}, "{set} has 2 class folders but 'digits' has 10 classes; give it one folder per class, "
                       "named so that they sort in the dataset's class order"),
    ({str(c): int(c != 9) for c in range(10)}, "class folder {set}/9 has no images; every class needs at least one"),
])
def test_an_imagefolder_set_needs_every_class_of_the_dataset(counts, problem, tmp_path):
    folder = imagefolder(tmp_path / "set", counts)
    result = invoke("evaluate", folder, "--dataset", "digits", "--root", tmp_path / "root")
    assert result.exit_code == 2 and result.stderr.strip() == "Error: " + problem.format(set=folder)


def test_a_reader_that_stops_reading_is_not_an_error():
    """`distillbench models | head -1`: the listing meets a closed pipe, which is no failure and no traceback."""
    import os
    import subprocess
    import sys

    from distillbench.testing import HANG_SECONDS
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "distillbench", "models"], stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=HANG_SECONDS)
    finally:
        os.close(write)
    assert proc.returncode == 0 and proc.stderr == ""
