"""Published results: what each method's paper reports, so that a table shows how far a measurement is off.

A plugin registers one :class:`PaperResult` per published cell (``register_paper_results``); ``compare
--paper`` prints them beside the measured cells of the same dataset, student, IPC and protocol, marked as
published, and lists the ones no measured row matches in a block of their own.
"""
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class PaperResult:
    method: str
    dataset: str
    student: str  # distillbench's model name for the paper's student (ResNet-18 on CIFAR: resnet18_modified)
    ipc: int
    accuracy: float  # top-1, %
    std: Optional[float]
    protocol: str  # the distillbench protocol that follows the paper's evaluation
    source: str  # paper and table

    @property
    def name(self) -> str:
        return f"{self.method}/{self.dataset}/{self.student}/ipc{self.ipc}/{self.protocol}"

    @property
    def description(self) -> str:
        return self.source

    def cell(self) -> str:
        return f"{self.accuracy:.2f}" + (f" ± {self.std:.2f}" if self.std is not None else "")
