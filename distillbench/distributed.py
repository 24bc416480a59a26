"""torch.distributed when the process was launched by ``torchrun``; harmless no-ops otherwise.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``.  The process group is started lazily, on
the first call that needs it, with gloo on CPU and nccl on CUDA.  Ranks may wait a long time for
each other (one rank inverting ImageNet classes while another has finished), so the group's
timeout is long: ``DISTILLBENCH_DIST_TIMEOUT`` seconds, one day by default.
"""
import atexit
import os
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from pathlib import Path


def rank() -> int:
    return int(os.environ.get("RANK", 0))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def active() -> bool:
    return world_size() > 1


def is_main() -> bool:
    return rank() == 0


def progress(iterable, desc: str, total=None):
    """A progress bar on rank 0 only: under torchrun the other ranks' bars would overwrite it."""
    from tqdm.auto import tqdm
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, disable=not is_main())


def shard(items: list) -> list:
    """This rank's share of ``items``: every world_size-th one, starting at its rank."""
    return items[rank()::world_size()]


def init(device: str) -> None:
    """Join the process group (once), with the backend that suits ``device``."""
    import torch.distributed as dist
    if not active() or dist.is_initialized():
        return
    timeout = timedelta(seconds=int(os.environ.get("DISTILLBENCH_DIST_TIMEOUT", 86400)))
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=timeout)
    # Left to interpreter finalisation, gloo's worker threads can abort the exit ("terminate called without an
    # active exception", SIGABRT) after the work is done; torch asks applications to destroy the group first.
    atexit.register(dist.destroy_process_group)


def barrier() -> None:
    if active():
        import torch.distributed as dist
        dist.barrier()


@contextmanager
def exclusive(lock: Path, wait: bool = True):
    """One process, or one torchrun job through its rank 0, holds ``lock`` for the block; another waits,
    or does not (see :func:`distillbench.atomic.exclusive`): every rank is given whether its job holds it.
    The closing barrier keeps every rank in until rank 0 is done."""
    from distillbench import atomic
    with atomic.exclusive(lock, wait) if is_main() else nullcontext(True) as held:
        yield from_main(held)
        barrier()


def from_main(value):
    """Rank 0's ``value``, on every rank."""
    if not active():
        return value
    import torch.distributed as dist
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather(value) -> list:
    """Every rank's ``value`` (any picklable object), in rank order; ``[value]`` when not distributed."""
    if not active():
        return [value]
    import torch.distributed as dist
    values = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def backend() -> str | None:
    if not active():
        return None
    import torch.distributed as dist
    return dist.get_backend()


def all_sum(tensor):
    """``tensor`` summed over ranks (in place); itself when not distributed."""
    if active():
        import torch.distributed as dist
        dist.all_reduce(tensor)
    return tensor


def broadcast_buffers(module) -> None:
    """Give every rank rank 0's buffers (batch-norm running statistics)."""
    if active():
        import torch.distributed as dist
        for buffer in module.buffers():
            dist.broadcast(buffer, 0)
