"""Running distillbench the ways a test needs: in-process, as a user's subprocess, under torchrun, killed.

Nothing here asserts on time: :data:`HANG_SECONDS` only stops a test that hangs, and says so."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

# A test process or wait that takes this long hangs: the slowest measured took about a minute on a loaded 2-core
# machine.
HANG_SECONDS = 900


def hang(what: str) -> AssertionError:
    return AssertionError(f"{what} did not finish within {HANG_SECONDS} s: it hangs")


def communicate(proc: subprocess.Popen, what: str):
    """``proc.communicate()``, killing a hung process."""
    try:
        return proc.communicate(timeout=HANG_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise hang(what) from None


_commands_registered = False


def invoke(*args, env=None):
    """Run the CLI in-process (plugins' commands included); a click ``Result``."""
    from click.testing import CliRunner

    from distillbench.cli import cli
    from distillbench.plugins import get_plugins
    global _commands_registered
    if not _commands_registered:
        get_plugins().register_commands(cli)
        _commands_registered = True
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


def run_command(command: list, **kwargs) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=HANG_SECONDS, **kwargs)
    except subprocess.TimeoutExpired:
        raise hang(" ".join(map(str, command))) from None


def run_subprocess(*args, env=None, cwd=None, check=False):
    """Run ``python -m distillbench`` as a user would, with a real plugin discovery."""
    full_env = {**os.environ, **(env or {})}
    proc = run_command([sys.executable, "-m", "distillbench", *map(str, args)], env=full_env, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
    return proc


def torchrun(*args, env=None, nproc=2):
    """``torchrun --standalone --nproc_per_node N -m distillbench ...`` on CPU (gloo)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return run_command([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                        "-m", "distillbench", *map(str, args)], env=full_env)


def start(*args, env, stdout=subprocess.DEVNULL):
    """``python -m distillbench ...`` in the background, Ctrl-C acting as in a terminal."""
    return subprocess.Popen([sys.executable, "-m", "distillbench", *map(str, args)], env={**os.environ, **env},
                            stdout=stdout, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(path: Path, proc, count: int = 1) -> None:
    """Until ``count`` files match ``path`` (a name or a glob pattern); the process must still be running."""
    deadline = time.monotonic() + HANG_SECONDS
    while len(list(path.parent.glob(path.name))) < count:
        assert proc.poll() is None, f"the run ended before {path} appeared: {proc.stderr.read()}"
        if time.monotonic() > deadline:
            raise hang(f"waiting for {path}")
        time.sleep(0.01)


_KILLED_AT_CALL = """
import os, signal, sys
from distillbench.cli import main
from distillbench.plugins import registry
kind, name, hook, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cls = registry(kind).get(name)
original, done = getattr(cls, hook), []
def killed(self, *args, **kwargs):
    if len(done) == calls:
        os.kill(os.getpid(), signal.SIGKILL)
    done.append(1)
    return original(self, *args, **kwargs)
setattr(cls, hook, killed)
main(sys.argv[5:])
"""


def killed_at_call(kind: str, name: str, hook: str, calls: int, *args, env=None) -> subprocess.CompletedProcess:
    """``distillbench ARGS`` in a subprocess that SIGKILLs itself when the registered ``kind`` ``name``'s
    ``hook`` (``distill_unit``, ``run_trial``) is called for the ``calls + 1``-th time: a crash at a known point."""
    return run_command([sys.executable, "-c", _KILLED_AT_CALL, kind, name, hook, str(calls), *map(str, args)],
                       env={**os.environ, **(env or {})})


def install_plugin(site: Path, dist: str, module: str, source: str, version: str = "0.3.1") -> None:
    """A module plus a dist-info folder with an entry point in the distillbench group, on a sys.path folder."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"  # the spec's escaping: '-' separates the version
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[distillbench]\n{dist} = {module}\n")


def png_bytes_of(path: Path) -> dict:
    """{relative path: bytes} of a set's images."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(Path(path).glob("*/*.png"))}


def finished_sets(root: Path) -> list[Path]:
    """The finished sets (with a manifest) under ``root/runs``."""
    runs = Path(root) / "runs"
    return sorted(p for p in runs.iterdir() if (p / "manifest.json").is_file()) if runs.is_dir() else []


# Commands that put small models for digits into the cache in seconds, for a contract's ``prepare``: a conv3
# teacher (the evaluation plugin's train-teacher) and a tiny diffusion backbone (the d3hr plugin's train-backbone).
TINY_TEACHER = ("train-teacher", "--dataset", "digits", "--arch", "conv3", "--epochs", "3")
TINY_BACKBONE = ("d3hr", "train-backbone", "--dataset", "digits", "--set", "vae_epochs=1", "--set", "dit_steps=10",
                 "--set", "dit_layers=1", "--set", "vae_channels=16,32,32")


def hub_snapshot(cache: Path, repo_id: str, files: dict) -> Path:
    """A Hugging Face cache entry as huggingface_hub writes it (``snapshots/<revision>/...``, ``refs/main``), each
    file written by ``files[name](path)``; the snapshot folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    for name, write in files.items():
        path = repo / "snapshots" / revision / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return repo / "snapshots" / revision


def copied_into_hub_cache(cache: Path, repo_id: str, folder: Path) -> Path:
    """``folder`` (a ``save_pretrained`` output) as the cached snapshot of ``repo_id``."""
    import shutil
    return hub_snapshot(cache, repo_id, {str(f.relative_to(folder)): lambda p, f=f: shutil.copy(f, p)
                                         for f in folder.rglob("*") if f.is_file()})

