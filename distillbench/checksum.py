"""Checksums of inputs, recorded with every result."""
import hashlib
import json
from pathlib import Path


def json_digest(value) -> str:
    """sha256 hex digest of ``value`` as canonical JSON (sorted keys): the same value, the same digest."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def sha256_file(path: Path, digest=None) -> str:
    digest = digest or hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()
