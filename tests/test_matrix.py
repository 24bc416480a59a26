"""benchmarks/matrix.py, the one command behind the cross-method table: the commands it runs."""
import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("matrix", Path(__file__).parents[1] / "benchmarks" / "matrix.py")
matrix = importlib.util.module_from_spec(spec)
spec.loader.exec_module(matrix)


def commands(*argv):
    return [[str(a) for a in command] for command in matrix.matrix(matrix.parser().parse_args(argv))]


def option(command, key):
    return [command[i + 1] for i, a in enumerate(command) if a == "--option" and command[i + 1].startswith(key)]


def test_the_default_matrix_is_every_method_ipc_and_student_then_compare():
    default = commands()
    assert default[:2] == [["train-teacher", "--dataset", "mnist5k", "--arch", arch, "--epochs", "15"]
                           for arch in ("conv3", "resnet18_modified")]
    runs = default[2:-1]
    assert [(c[c.index("--method") + 1], c[c.index("--ipc") + 1]) for c in runs] == [
        (m, ipc) for m in ("random", "d4m", "sre2l", "rded", "d3hr") for ipc in ("1", "10", "50")]
    for run in runs:
        assert run[run.index("--protocol") + 1] == "rded" and run[run.index("--repeats") + 1] == "3"
        assert [run[i + 1] for i, a in enumerate(run) if a == "--student"] == ["conv3", "resnet18_modified"]
        synthesises_with_a_teacher = run[run.index("--method") + 1] in ("sre2l", "rded")
        assert option(run, "teacher_arch=") == (["teacher_arch=conv3"] if synthesises_with_a_teacher else [])
    assert default[-1][0] == "compare" and default[-1][-1].endswith("mnist5k-rded.png")


def test_method_options_reach_their_method_only_and_shipped_names_the_plugin_backbone():
    full = commands("--dataset", "mnist", "--data-dir", "/data", "--method-option", "d3hr:backbone=SHIPPED",
                    "--ipc", "10")
    by_method = {c[c.index("--method") + 1]: c for c in full if c[0] == "run"}
    (backbone,) = option(by_method["d3hr"], "backbone=")
    assert (Path(backbone.split("=", 1)[1]) / "model_index.json").is_file()
    assert all(not option(c, "backbone=") for m, c in by_method.items() if m != "d3hr")
    assert all(c[c.index("--data-dir") + 1] == "/data" for c in full if c[0] != "compare")


def test_a_teacher_pool_is_trained_too_and_kept_while_single_teachers_follow_the_first_student():
    pooled = commands("--methods", "cda,gvbsm,random", "--students", "resnet18_modified,conv3", "--ipc", "1")
    assert [c[c.index("--arch") + 1] for c in pooled if c[0] == "train-teacher"] == [
        "resnet18_modified", "conv3", "conv4"]  # the students', then the rest of G-VBSM's pool on mnist5k
    by_method = {c[c.index("--method") + 1]: c for c in pooled if c[0] == "run"}
    assert option(by_method["cda"], "teacher_arch=") == ["teacher_arch=resnet18_modified"]
    assert not option(by_method["gvbsm"], "teacher_arch=") and not option(by_method["random"], "teacher_arch=")


def test_each_table_has_its_own_protocol_ipcs_and_overrides_and_its_compare():
    demo = commands("--methods", "random,d3hr", "--students", "conv3", "--table", "rded:10:epochs=100,eval_every=5",
                    "--table", "hard-label:1")
    steps = [(c[0], c[c.index("--method") + 1] if c[0] == "run" else None, c[c.index("--protocol") + 1]
              if "--protocol" in c else None, [c[i + 1] for i, a in enumerate(c) if a in ("--ipc", "--set")])
             for c in demo[1:]]
    assert steps == [("run", "random", "rded", ["10", "epochs=100", "eval_every=5"]),
                     ("run", "d3hr", "rded", ["10", "epochs=100", "eval_every=5"]), ("compare", None, "rded", []),
                     ("run", "random", "hard-label", ["1"]), ("run", "d3hr", "hard-label", ["1"]),
                     ("compare", None, "hard-label", [])]


def test_progress_says_the_step_the_time_spent_and_an_estimate_of_what_remains():
    assert matrix.progress(1, 13, 4.2) == "[1/13, 0:04 elapsed]"
    assert matrix.progress(3, 13, 120) == "[3/13, 2:00 elapsed, about 11:00 left]"  # two steps took a minute each
