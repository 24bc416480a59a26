"""Mixed precision that is worth having: bf16 autocast on CUDA and on CPUs that compute bf16 natively."""
import functools


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AVX512-BF16 or AMX), so autocast speeds it up."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision(device: str, amp: bool = True) -> str:
    native = device.startswith("cuda") or cpu_has_native_bf16()
    return "bf16-autocast" if amp and native else "fp32"


def autocast(device: str, amp: bool = True):
    import torch
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16,
                          enabled=precision(device, amp) == "bf16-autocast")


def timed(fn, device: str) -> float:
    """Seconds that ``fn()`` takes, the device's queued work included."""
    import time

    import torch

    def synchronize():
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    synchronize()
    start = time.perf_counter()
    fn()
    synchronize()
    return time.perf_counter() - start
