"""Write files so that a reader never sees half of one."""
import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_torch(path: Path, obj) -> None:
    """``torch.save(obj)`` to ``path``, atomically."""
    import io

    import torch
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getvalue())


def copy_tree(source: Path, dest: Path) -> None:
    """Copy the folder ``source`` to ``dest``, which appears whole or not at all."""
    import shutil
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def exclusive(path: Path, wait: bool = True):
    """Hold an exclusive lock on ``path`` (created if missing) for the block; another process asking for
    it waits, or with ``wait=False`` runs the block at once.  The block is given whether it holds the lock.
    The kernel drops the lock when its holder dies, even by SIGKILL: no stale locks.  A lock file may be
    deleted by its holder (``distillbench clean`` does): whoever then acquires the deleted file takes the
    new one at that path instead, so two processes never both hold "the" lock."""
    path = Path(path)
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            if not _same_file(f, path):  # deleted (or replaced) while we waited for it
                continue
            try:
                yield True
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
            return


def _same_file(f, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(f.fileno()), os.stat(path))
    except FileNotFoundError:
        return False
