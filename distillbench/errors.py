"""Errors that the CLI turns into one clear line instead of a traceback."""


class DistillbenchError(Exception):
    """A failure the user can act on; the message names the problem and the fix."""

    exit_code = 1


class UsageError(DistillbenchError):
    """Bad input on the command line (unknown name, bad value, missing path)."""

    exit_code = 2


def choices_hint(names, empty: str = "(none registered)") -> str:
    names = sorted(names)
    return ", ".join(names) if names else empty
