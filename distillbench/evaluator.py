"""The Evaluator interface: how a distilled set is judged, shaped like the Distiller.

An evaluator splits an evaluation into trials (the ``students`` evaluator: one per student and seed) and
runs one trial at a time; :mod:`distillbench.evaluation` does the rest the same for every evaluator: it
looks each trial's identity up in the store (reusing a stored record unless ``--again``), holds the trial's
lock so that processes sharing a root train it once, hands over a checkpoint path to resume an
interrupted training from, and records and reports each result.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Optional

from distillbench import distributed


@dataclass
class EvalRequest:
    spec: object  # DatasetSpec
    data: object  # DataSource: where the dataset's splits are read from
    students: list[str]
    teachers: list[str] = field(default_factory=list)  # paths or empty for the cached default
    protocol: str = "rded"
    overrides: dict = field(default_factory=dict)
    repeats: Optional[int] = None  # trials per student; None: the evaluator's default
    seed: int = 0
    device: str = "cpu"
    cache_dir: Path = Path(".")

    def load(self, split: str):
        """The ImageSet of the dataset's ``split`` ("train" or "test")."""
        return self.data.load(self.spec, split, self.device)


@dataclass(frozen=True)
class Trial:
    """One unit of evaluation.  ``fields`` holds everything that decides its outcome (set checksum, student,
    resolved protocol, teachers, seed...): they are hashed into the trial's identity and stored with its
    record, so a trial whose identity is stored already need not run again, and tables count it once."""

    name: str  # for messages, e.g. "conv3 seed 0"
    fields: dict


@dataclass
class TrialContext:
    device: str
    checkpoint: Path  # where run_trial may keep its training state to resume from; deleted once the record is stored

    def progress(self, iterable, desc: str, total=None):
        return distributed.progress(iterable, desc, total)


def identity(fields: dict) -> str:
    """"sha256:" and a hash of ``fields``."""
    from distillbench.checksum import json_digest
    return "sha256:" + json_digest(fields)


class Evaluator:
    """Subclasses set ``name`` and ``description`` and implement :meth:`trials` and :meth:`run_trial`.

    A record (what ``run_trial`` returns, joined with the trial's fields) must hold the store's evaluation
    columns: ``student``, ``protocol``, ``seed``, ``final_acc`` (a fraction), ``best_acc`` (or None) and
    ``seconds``; ``labels: "hard"`` marks a hard-label evaluation (DD-Ranking's HLR reads it)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def check(self, request: EvalRequest) -> None:
        """Refuse bad settings (unknown protocol, missing teacher...) before anything is distilled or trained."""

    def trials(self, distilled, request: EvalRequest) -> list[Trial]:
        """The trials of evaluating ``distilled``, in the order their records are returned."""
        raise NotImplementedError

    def run_trial(self, trial: Trial, ctx: TrialContext) -> dict:
        """Run one trial (every rank of a torchrun job runs it); return its result fields."""
        raise NotImplementedError
