"""The cross-method table: every method x IPC x student, 3 seeds, one protocol, then `compare`.

    python benchmarks/matrix.py --dataset mnist5k
    python benchmarks/matrix.py --dataset mnist --data-dir ../shared/data \\
        --method-option d3hr:backbone=SHIPPED --method-option d4m:backbone=SHIPPED

Trains (or reuses) one teacher per student architecture, distils with each method at each IPC and
evaluates each set with each student (the student's own architecture as teacher, as RDED and D3HR do),
then prints the table and writes the plot beside the results store.  SHIPPED stands for the mnist5k
backbone that ships with the d3hr plugin.  Re-running skips finished runs and
stored evaluations, so an interrupted matrix resumes where it stopped.
"""
import argparse
import subprocess
import sys
from pathlib import Path


def cli(step: str, *args):
    print(f"+ [{step}] distillbench", " ".join(map(str, args)), flush=True)
    code = subprocess.run([sys.executable, "-m", "distillbench", *map(str, args)]).returncode
    if code:
        sys.exit(code)  # the command has said why on stderr; what it finished is kept for the re-run


def expand(option: str) -> str:
    """``SHIPPED`` -> the path of the mnist5k backbone shipped with the d3hr plugin."""
    if "SHIPPED" not in option:
        return option
    from distillbench_d3hr.backbone import SHIPPED
    return option.replace("SHIPPED", str(SHIPPED / "mnist5k"))


def main():
    commands = matrix(parser().parse_args())
    try:
        for step, command in enumerate(commands, 1):
            cli(f"{step}/{len(commands)}", *command)
    except KeyboardInterrupt:  # Ctrl-C reaches the running command too, which says what is kept
        sys.exit(130)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--data-dir")
    parser.add_argument("--methods", default="random,d4m,sre2l,rded,d3hr")
    parser.add_argument("--ipc", default="1,10,50")
    parser.add_argument("--students", default="conv3,resnet18_modified")
    parser.add_argument("--protocol", default="rded")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--root", default="distillbench-runs")
    parser.add_argument("--set", action="append", default=[], help="protocol override, e.g. epochs=100")
    parser.add_argument("--method-option", action="append", default=[], metavar="METHOD:KEY=VALUE")
    return parser


def matrix(args) -> list[list]:
    """The command lines, in order: teachers, then every method x IPC run with its evaluation, then compare."""
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    students = args.students.split(",")
    commands = [["train-teacher", "--dataset", args.dataset, "--arch", student, "--epochs", args.teacher_epochs,
                 *data] for student in students]
    evaluation = [a for s in students for a in ("--student", s)] + [a for s in args.set for a in ("--set", s)]
    for method in args.methods.split(","):
        options = [a for spec in args.method_option if spec.split(":", 1)[0] == method
                   for a in ("--option", expand(spec.split(":", 1)[1]))]
        if method in ("sre2l", "rded"):
            options += ["--option", f"teacher_arch={students[0]}"]
        commands += [["run", "--method", method, "--dataset", args.dataset, "--ipc", ipc, *options, *data,
                      "--evaluate", "--protocol", args.protocol, "--repeats", args.repeats, *evaluation,
                      "--root", args.root] for ipc in args.ipc.split(",")]
    return commands + [["compare", "--dataset", args.dataset, "--protocol", args.protocol, "--root", args.root,
                        "--plot", Path(args.root) / f"{args.dataset}-{args.protocol}.png"]]


if __name__ == "__main__":
    main()
