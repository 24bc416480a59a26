"""The streaming image pipeline of file-backed datasets: files decoded in parallel, handed out in order, with
a bounded number in flight.

PIL and torchvision decode and resize outside the GIL, so threads scale with the cores without worker processes
or copies between them.  Everything that reads image files goes through :func:`ordered_map`: a method's
per-class loading, the evaluation's test pass and the bad-image check.
"""
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def ordered_map(fn, items, workers: int, ahead: int = 0):
    """``fn`` over ``items`` on ``workers`` threads, yielded in order; at most ``ahead`` (default 4 per worker)
    results wait, decoded, for the consumer, so memory stays bounded however many items there are."""
    if workers <= 1:
        yield from map(fn, items)
        return
    ahead = ahead or 4 * workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="distillbench-decode",
                            initializer=_one_intra_op_thread) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _one_intra_op_thread() -> None:
    """Each decoding thread resizes with one intra-op thread, as a DataLoader worker does: the pool is the
    parallelism, and nested thread teams would only contend for the cores.  (Under torch's OpenMP backend the
    setting is the calling thread's own; the main thread keeps its threads.)"""
    import torch
    torch.set_num_threads(1)


def chunked(iterable, size: int):
    """Lists of ``size`` consecutive items (the last one shorter)."""
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
