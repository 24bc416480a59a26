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


def precision(device: str, amp=True) -> str:
    """The precision ``amp`` gives on ``device``: True or "bf16" is bf16 autocast where it is native (CUDA, bf16
    CPUs), "fp16" is fp16 autocast on CUDA (the official D3HR code's), False or "fp32" and the rest are fp32."""
    cuda = device.startswith("cuda")
    if amp == "fp16":
        return "fp16-autocast" if cuda else "fp32"
    native = cuda or cpu_has_native_bf16()
    return "bf16-autocast" if amp in (True, "bf16") and native else "fp32"


def autocast(device: str, amp=True):
    import torch
    used = precision(device, amp)
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu",
                          dtype=torch.float16 if used == "fp16-autocast" else torch.bfloat16, enabled=used != "fp32")


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
