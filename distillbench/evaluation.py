"""The per-trial evaluation runner: what every evaluator gets from the core, as every method gets resume,
sharding and atomic output from :mod:`distillbench.runner`.

For each trial the evaluator names, the runner takes the trial's lock (so that processes sharing a root
run each trial once: first the trials nobody else holds, then it waits for the others), reuses a record
of the same identity stored earlier (unless ``again``), else runs the trial with a checkpoint path it may
resume from, then stores the record (rank 0) and reports it, and deletes the checkpoint.  A lock file goes
with its record; a crash leaves it for the next holder (the kernel has dropped the lock).
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from distillbench import distributed
from distillbench.distilled import DistilledSet
from distillbench.errors import UsageError
from distillbench.evaluator import EvalRequest, Evaluator, Trial, TrialContext, identity
from distillbench.plugins import registry
from distillbench.provenance import versions
from distillbench.store import Store


def evaluate(distilled: DistilledSet, root: Path, evaluator_name: str, request: EvalRequest,
             on_result: Optional[Callable[[dict], None]] = None, again: bool = False) -> list[dict]:
    """Evaluate ``distilled`` with the registered evaluator; every record, run now or stored earlier, in
    the order of the evaluator's trials."""
    manifest = distilled.manifest
    if manifest["dataset"] != request.spec.name:
        raise UsageError(f"the set distills '{manifest['dataset']}' but evaluation was asked on "
                         f"'{request.spec.name}'; drop --dataset or pass --dataset {manifest['dataset']}")
    evaluator = registry("evaluator").get(evaluator_name)()
    runner = _TrialRunner(evaluator, Store(root), root / "scratch" / "evaluations", request.device, on_result, again,
                          base={"run_id": manifest.get("run_id"), "method": manifest["method"],
                                "dataset": manifest["dataset"], "ipc": manifest["ipc"],
                                "distilled_path": str(distilled.path), "evaluator": evaluator_name,
                                "versions": versions()})
    return runner.run(evaluator.trials(distilled, request))


@dataclass
class _TrialRunner:
    evaluator: Evaluator
    store: Store
    scratch: Path
    device: str
    on_result: Optional[Callable[[dict], None]]
    again: bool
    base: dict

    def identity(self, trial: Trial) -> str:
        return identity({"evaluator": self.base["evaluator"], "run_id": self.base["run_id"],
                         "method": self.base["method"], **trial.fields})

    def run(self, trials: list[Trial]) -> list[dict]:
        keys = [self.identity(trial) for trial in trials]
        records = {}
        for wait in (False, True):  # first the trials no other process is running, then wait for those
            for trial, key in zip(trials, keys):
                if key in records:
                    continue
                lock = self._scratch(key, ".lock")
                with distributed.exclusive(lock, wait) as held:
                    if held:
                        records[key] = self.earlier(key) or self.trained(trial, key)
                        if distributed.is_main():
                            lock.unlink(missing_ok=True)
        return [records[key] for key in keys]

    def earlier(self, key: str) -> Optional[dict]:
        earlier = None if self.again else self.store.recorded_evaluation(key)
        if earlier is not None:
            earlier = {**earlier, "reused": True}
            self.report(earlier)
        return earlier

    def trained(self, trial: Trial, key: str) -> dict:
        checkpoint = self._scratch(key, ".pt")
        result = self.evaluator.run_trial(trial, TrialContext(device=self.device, checkpoint=checkpoint))
        record = {**self.base, **trial.fields, "identity": key, "device": self.device, **result}
        if distributed.is_main():  # the other ranks of a torchrun job trained the same model with it
            self.store.record_evaluation(record)
            self.report(record)
            checkpoint.unlink(missing_ok=True)
        return record

    def report(self, record: dict) -> None:
        if self.on_result is not None and distributed.is_main():
            self.on_result(record)

    def _scratch(self, key: str, suffix: str) -> Path:
        return self.scratch / f"{key.split(':')[-1][:32]}{suffix}"
