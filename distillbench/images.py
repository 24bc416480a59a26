"""The streaming image pipeline of file-backed datasets: files decoded in parallel, handed out in order, with
a bounded number in flight.

Decoding runs in worker processes (:func:`parallel_map`, through torch's DataLoader: forked workers with one
intra-op thread each, tensors handed over in shared memory), because a thread pool stops scaling at a few
cores: the per-image Python and tensor glue holds the GIL (on 16 cores threads reached a quarter of a
DataLoader's rate).  Reading bytes for the GPU's decoder stays on threads (:func:`ordered_map`).  Everything
that reads image files goes through here: a method's per-class loading, teacher training, the evaluation's test
pass and the bad-image check.
"""
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from distillbench.errors import UsageError


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parallel_map(fn, items, workers: int, batch_size=None):
    """``fn`` over ``items`` in ``workers`` processes, yielded in order, at most two per worker waiting; with
    ``batch_size``, the results stacked in the workers into tensors of that many rows, as a DataLoader batches.
    A :class:`UsageError` raised by ``fn`` (a file that cannot be read) is raised here, as the same one line."""
    import torch
    items = list(items)
    if workers <= 1 or len(items) < 2:
        results = map(fn, items)
        yield from (map(torch.stack, chunked(results, batch_size)) if batch_size else results)
        return
    from torch.utils.data import DataLoader
    loader = DataLoader(_Calls(fn, items), batch_size=batch_size, collate_fn=_stacked if batch_size else None,
                        num_workers=min(workers, len(items)), prefetch_factor=2)
    for failed, value in loader:
        if failed:
            raise UsageError(value)
        yield value


class _Calls:
    """``fn(items[k])`` as a map-style dataset; a worker's UsageError travels back as its message."""

    def __init__(self, fn, items):
        self.fn, self.items = fn, items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, k):
        try:
            return False, self.fn(self.items[k])
        except UsageError as exc:
            return True, str(exc)


def _stacked(samples):
    """The batch stacked as a DataLoader's own collate stacks it: in a worker, straight into shared memory."""
    from torch.utils.data import default_collate
    failures = [value for failed, value in samples if failed]
    return (True, failures[0]) if failures else (False, default_collate([value for _, value in samples]))


def ordered_map(fn, items, workers: int):
    """``fn`` over ``items`` on ``workers`` threads, yielded in order; at most 4 per worker wait for the consumer.
    For work that releases the GIL (reading files)."""
    if workers <= 1:
        yield from map(fn, items)
        return
    ahead = 4 * workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="distillbench-read") as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


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


def rebatched(pieces, size: int):
    """Tensors of ``size`` rows (the last one shorter) from a stream of smaller ones, in order."""
    import torch
    held, count = [], 0
    for piece in pieces:
        held.append(piece)
        count += len(piece)
        while count >= size:
            joined = torch.cat(held)
            yield joined[:size]
            held, count = [joined[size:]], count - size
    if count:
        yield torch.cat(held)
