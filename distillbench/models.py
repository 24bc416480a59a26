"""Model registry entries: student and teacher architectures.

``build(num_classes, image_size)`` returns a fresh, randomly initialised
``torch.nn.Module`` taking normalised ``[B, 3, image_size, image_size]`` input.
``adamw_lr`` is the student learning rate RDED's protocol uses for it.
"""
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    build: Callable = field(repr=False, compare=False)
    adamw_lr: float = 1e-3
