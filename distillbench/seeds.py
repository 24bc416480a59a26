"""Seeds derived from (seed, key): the same for a unit or a trial whatever order, process or rank runs it."""
import hashlib


def derive_seed(seed: int, key: str) -> int:
    """A 63-bit seed for ``key`` that does not depend on the order units run in."""
    digest = hashlib.sha256(f"{seed}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)
