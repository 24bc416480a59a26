"""What a result records about the software that made it."""
import platform


def versions() -> dict:
    import numpy
    import torch
    import torchvision
    from distillbench import __version__
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__, "distillbench": __version__}
