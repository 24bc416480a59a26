"""Model registry entries: student and teacher architectures.

``build(num_classes, image_size)`` returns a fresh, randomly initialised
``torch.nn.Module`` taking normalised ``[B, 3, image_size, image_size]`` input.
``adamw_lr`` is the student learning rate RDED's protocol uses for it.  ``adapt_state_dict`` maps a
published checkpoint's layout onto the built module's (RDED's ConvNet observers), or leaves it as it is.
"""
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    build: Callable = field(repr=False, compare=False)
    adamw_lr: float = 1e-3
    adapt_state_dict: Optional[Callable[[dict], dict]] = field(default=None, repr=False, compare=False)
