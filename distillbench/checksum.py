"""Checksums of inputs, recorded with every result."""
import hashlib
from pathlib import Path


def sha256_file(path: Path, digest=None) -> str:
    digest = digest or hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()
