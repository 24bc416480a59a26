"""The torch device of a command, resolved once: ``--device`` checked, the rank's GPU picked under torchrun,
and the process group joined."""
from distillbench import distributed
from distillbench.errors import UsageError


def resolve_device(device: str) -> str:
    """The torch device for ``--device``; under torchrun, plain ``cuda`` means this rank's local GPU."""
    import torch
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and distributed.active():
        device = f"cuda:{distributed.local_rank()}"
    if device != "cpu":
        _check_cuda(device)
        if ":" in device:  # torch.cuda.set_device refuses a plain "cuda"; that one is the current device already
            torch.cuda.set_device(device)
    distributed.init(device)
    return device


def _check_cuda(device: str) -> None:
    import torch
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise UsageError(f"unknown --device '{device}'; use cpu, cuda, cuda:N or auto")
    if not torch.cuda.is_available() or int(index or 0) >= torch.cuda.device_count():
        raise UsageError(f"--device {device} requested but that CUDA device is not available here; "
                         "use --device cpu or auto")
