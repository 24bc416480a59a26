"""Errors that the CLI turns into one clear line instead of a traceback."""


class DistillbenchError(Exception):
    """A failure the user can act on; the message names the problem and the fix."""

    exit_code = 1


class ContractError(DistillbenchError):
    """A plugin broke its interface (a method returned float images, too few of them...): the plugin's
    author has to fix it, not the user's command line."""


class UsageError(DistillbenchError):
    """Bad input on the command line (unknown name, bad value, missing path)."""

    exit_code = 2


def check_finite(x, what: str, fix: str) -> None:
    """Stop with a clear error when tensor ``x`` holds NaN or Inf (before uint8 conversion hides it)."""
    if not x.isfinite().all():
        raise DistillbenchError(f"NaN or Inf in the {what}; {fix}")


def choices_hint(names, empty: str = "(none registered)") -> str:
    names = sorted(names)
    return ", ".join(names) if names else empty
