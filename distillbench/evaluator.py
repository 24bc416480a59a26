"""The Evaluator interface: how a distilled set is judged.

An evaluator turns a :class:`~distillbench.distilled.DistilledSet` into one
record per (student, seed); each record is stored as it is and must hold at
least the store's evaluation columns (student, protocol, seed, final_acc, ...).
Evaluators that give each record an ``identity`` (see :func:`identity`) and
ask ``request.recorded(identity)`` before training make re-runs resumable;
those that also save training state under ``request.checkpoints`` resume an
interrupted training mid-way.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar


@dataclass
class EvalRequest:
    spec: object  # DatasetSpec
    load_split: Callable  # split name -> ImageSet
    students: list[str]
    teachers: list[str] = field(default_factory=list)  # paths or empty for the cached default
    protocol: str = "rded"
    overrides: dict = field(default_factory=dict)
    repeats: int = 3
    seed: int = 0
    device: str = "cpu"
    cache_dir: Path = Path(".")
    recorded: Callable[[str], dict | None] = lambda identity: None  # an earlier record with this identity
    checkpoints: Path | None = None  # where evaluators may keep unfinished trainings' state, to resume them


def identity(fields: dict) -> str:
    """A hash of everything that decides an evaluation's outcome (set checksum, student, resolved protocol,
    teachers, seeds...).  A record whose identity is stored already need not be trained again, and tables
    count it once."""
    from distillbench.checksum import json_digest
    return "sha256:" + json_digest(fields)


class Evaluator:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def check(self, request: EvalRequest) -> None:
        """Refuse bad settings (unknown protocol, missing teacher...) before anything is distilled or trained."""

    def evaluate(self, distilled, request: EvalRequest, on_result: Callable[[dict], None]) -> list[dict]:
        """Evaluate ``distilled``; call ``on_result(record)`` as each record is finished."""
        raise NotImplementedError
