"""The cross-method table: every method x IPC x student, 3 seeds, one protocol, then `compare`.

    python benchmarks/matrix.py --dataset mnist5k
    python benchmarks/matrix.py --dataset mnist --data-dir ../shared/data \\
        --method-option d3hr:backbone=SHIPPED --method-option d4m:backbone=SHIPPED
    python benchmarks/matrix.py --table rded:10:epochs=100 --table hard-label:1   # two tables (the demo's)

A table is a protocol, its IPCs and its protocol overrides (``--table PROTOCOL:IPCS[:KEY=VALUE,...]``);
without ``--table`` it is ``--protocol`` at ``--ipc`` with ``--set``.

Trains (or reuses) one teacher per student architecture (and those of the pools that G-VBSM's and EDC's
recipes name), distills with each method at each IPC and evaluates each set with each student (the student's
own architecture as teacher, as RDED and D3HR do),
then prints the table and writes the plot beside the results store.  SHIPPED stands for the mnist5k
backbone that ships with the d3hr plugin.  Re-running skips finished runs and
stored evaluations, so an interrupted matrix resumes where it stopped.
"""
import argparse
import sys
import time
from pathlib import Path


def cli(*args):
    """Run one command in this process (a process each would import torch and load the data every time);
    its manifests record it as the command line it stands for."""
    from distillbench.cli import main
    argv, sys.argv = sys.argv, ["distillbench", *map(str, args)]
    try:
        main(sys.argv[1:])
    except SystemExit as done:
        if done.code:
            raise  # the command has said why on stderr; what it finished is kept for the re-run
    finally:
        sys.argv = argv


def progress(step: int, steps: int, elapsed: float) -> str:
    """``[k/n, m:ss elapsed, about m:ss left]``: what remains is estimated from the mean step so far."""
    left = f", about {clock(elapsed / (step - 1) * (steps - step + 1))} left" if step > 1 else ""
    return f"[{step}/{steps}, {clock(elapsed)} elapsed{left}]"


def clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def expand(option: str) -> str:
    """``SHIPPED`` -> the path of the mnist5k backbone shipped with the d3hr plugin."""
    if "SHIPPED" not in option:
        return option
    from distillbench.diffusion.backbone import SHIPPED
    return option.replace("SHIPPED", str(SHIPPED / "mnist5k"))


def main():
    commands = matrix(parser().parse_args())
    start = time.monotonic()
    try:
        for step, command in enumerate(commands, 1):
            print(progress(step, len(commands), time.monotonic() - start), "distillbench",
                  " ".join(map(str, command)), flush=True)
            cli(*command)
        print(f"done in {clock(time.monotonic() - start)}", flush=True)
    except KeyboardInterrupt:  # between commands; within one, the command says what is kept and exits 130
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
    parser.add_argument("--table", action="append", default=[], metavar="PROTOCOL:IPCS[:KEY=VALUE,...]",
                        help="a table of its own protocol, IPCs and overrides (repeatable), e.g. hard-label:1")
    parser.add_argument("--method-option", action="append", default=[], metavar="METHOD:KEY=VALUE")
    return parser


def tables(args) -> list[tuple[str, list[str], list[str]]]:
    """(protocol, IPCs, protocol overrides) of each table."""
    if not args.table:
        return [(args.protocol, args.ipc.split(","), args.set)]
    parsed = []
    for spec in args.table:
        protocol, ipcs, *overrides = spec.split(":", 2)
        parsed.append((protocol, ipcs.split(","), overrides[0].split(",") if overrides else []))
    return parsed


def teacher_recipes(args) -> dict:
    """method -> the architectures of the cached teachers its recipe for the dataset names (methods that name
    none left out).  A method with one synthesises with the first student's architecture; a pool (G-VBSM's,
    EDC's) is kept, and the matrix trains its teachers too."""
    from distillbench.plugins import registry
    spec = registry("dataset").get(args.dataset)
    recipes = {method: registry("method").get(method)().recipe(spec).get("teacher_arch")
               for method in args.methods.split(",")}
    return {method: archs.split(",") for method, archs in recipes.items() if archs}


def matrix(args) -> list[list]:
    """The command lines, in order: teachers, then for each table every method x IPC run with its evaluation,
    and its compare."""
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    students = args.students.split(",")
    recipes = teacher_recipes(args)
    archs = dict.fromkeys(students + [arch for pool in recipes.values() for arch in pool])
    commands = [["train-teacher", "--dataset", args.dataset, "--arch", arch, "--epochs", args.teacher_epochs,
                 *data] for arch in archs]
    for protocol, ipcs, overrides in tables(args):
        evaluation = [a for s in students for a in ("--student", s)] + [a for s in overrides for a in ("--set", s)]
        for method in args.methods.split(","):
            options = [a for spec in args.method_option if spec.split(":", 1)[0] == method
                       for a in ("--option", expand(spec.split(":", 1)[1]))]
            if len(recipes.get(method, ())) == 1:
                options += ["--option", f"teacher_arch={students[0]}"]
            commands += [["run", "--method", method, "--dataset", args.dataset, "--ipc", ipc, *options, *data,
                          "--evaluate", "--protocol", protocol, "--repeats", args.repeats, *evaluation,
                          "--root", args.root] for ipc in ipcs]
        commands.append(["compare", "--dataset", args.dataset, "--protocol", protocol, "--root", args.root,
                         "--plot", Path(args.root) / f"{args.dataset}-{protocol}.png"])
    return commands


if __name__ == "__main__":
    main()
