"""What killed processes leave under a root, and its removal (``distillbench clean``).

Every process that works under a root holds a lock there (a run its ``scratch/<run id>/lock``, a student
seed its ``scratch/evaluations/*.lock``, a D3HR class its statistics lock); the kernel drops a lock when
its holder dies.  So a lock file nobody holds, a scratch folder of a run that no longer needs it and a
temporary file of an interrupted atomic write are leftovers.  Unfinished work that the same command
resumes (a ``runs/<id>.partial`` set with its scratch, a student's training checkpoint) is kept unless
asked for; statistics under ``scratch/shared`` are reused by later runs and always kept.
"""
import shutil
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from distillbench import atomic
from distillbench.errors import UsageError


@dataclass(frozen=True)
class Leftover:
    path: Path
    why: str
    resumable: bool = False  # unfinished work that rerunning its command continues


TEMP_AGE_SECONDS = 3600  # a write in progress holds no lock: its temporary file is left alone this long


def leftovers(root: Path) -> list[Leftover]:
    """What killed processes left under ``root``.  Call it holding the root's locks (see :func:`holding`)."""
    scratch, runs = root / "scratch", root / "runs"
    run_folders = [f for f in sorted(scratch.glob("*")) if f.is_dir() and f.name not in ("shared", "evaluations")]
    old = time.time() - TEMP_AGE_SECONDS
    found = [Leftover(p, "temporary file of an interrupted write") for p in sorted(root.rglob(".*.tmp"))
             if p.stat().st_mtime < old]
    found += [Leftover(lock, "lock file nobody holds") for lock in sorted(scratch.rglob("*.lock"))
              if not any(folder in lock.parents for folder in run_folders)]
    found += [_run_scratch(folder, runs) for folder in run_folders]
    found += [Leftover(state, "a student's training checkpoint; the same evaluate command resumes it", True)
              for state in sorted((scratch / "evaluations").glob("*.pt"))]
    found += [Leftover(partial, "an unfinished set; the same run command resumes it", True)
              for partial in sorted(runs.glob("*.partial"))]
    return found


@contextmanager
def holding(root: Path):
    """Hold every lock under ``root`` for the block, so that no process starts work there meanwhile (one that
    tries finds the lock file gone afterwards and takes a new one); refused while a process holds one."""
    locks = sorted(root.glob("scratch/**/*.lock")) + sorted(root.glob("scratch/*/lock"))
    with ExitStack() as stack:
        for lock in locks:
            if not stack.enter_context(atomic.exclusive(lock, wait=False)):
                raise UsageError(f"a process is working under {root} (it holds {lock}); run `distillbench clean` "
                                 "once it has finished")
        yield


def _run_scratch(folder: Path, runs: Path) -> Leftover:
    if (runs / folder.name / "manifest.json").is_file():
        return Leftover(folder, "scratch of a finished run")
    if (runs / f"{folder.name}.partial").is_dir():
        return Leftover(folder, "scratch of an unfinished set; the same run command resumes it", True)
    return Leftover(folder, "scratch of a run that left no set")


def remove(items: list[Leftover], resumable: bool) -> list[Leftover]:
    """Delete ``items`` (the resumable ones only when ``resumable``); returns what was deleted."""
    removed = [item for item in items if resumable or not item.resumable]
    for item in removed:
        if item.path.is_dir():
            shutil.rmtree(item.path, ignore_errors=True)
        else:
            item.path.unlink(missing_ok=True)
    return removed
