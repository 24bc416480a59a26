"""Group-sampling throughput and memory at ImageNet's latent shape (d = 4*32*32, n = IPC = 10).

Reference, measured in the same run: the rate at which this machine's torch can merely draw the same
standard normals, chunk by chunk, with the same generators.  Goal: >= 70% of it.  Memory: the peak
resident memory of a fresh process per m, which must stay flat as m grows.

    python benchmarks/group_sampling.py [--d 4096] [--n 10] [--m 20000] [--device cpu]
"""
import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from distillbench_d3hr.group_sampling import ScoreWeights, chunk_size_for, draw_chunk, select_group


def draw_only(d, n, m, device):
    size = chunk_size_for(n, d, device)
    for k in range((m + size - 1) // size):
        draw_chunk(0, "k", k, size, n, d, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def select(d, n, m, device, compile_scores=False):
    mu, sigma = torch.zeros(d, device=device), torch.ones(d, device=device)
    select_group(mu, sigma, n, m, 0, "k", ScoreWeights(), compile_scores=compile_scores)
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def select_compiled(d, n, m, device):
    select(d, n, m, device, compile_scores=True)


def rate(fn, d, n, m, device, repeats=3):
    fn(d, n, min(m, chunk_size_for(n, d, device)), device)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(d, n, m, device)
        best = min(best, time.perf_counter() - start)
    return m / best


def peak_memory_mb(d, n, m, device) -> float:
    """Peak RSS (MiB) of a fresh process that selects among m candidates."""
    out = subprocess.run([sys.executable, __file__, "--d", str(d), "--n", str(n), "--m", str(m), "--device", device,
                          "--child"], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, default=4 * 32 * 32)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--m", type=int, default=20000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    d, n, m, device = args.d, args.n, args.m, args.device
    if args.child:
        select_compiled(d, n, m, device)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return
    draws = rate(draw_only, d, n, m, device)
    eager = rate(select, d, n, m, device)
    start = time.perf_counter()
    select_compiled(d, n, chunk_size_for(n, d, device), device)
    compile_seconds = time.perf_counter() - start
    compiled = rate(select_compiled, d, n, m, device)
    print(f"group sampling, d={d}, n={n}, m={m}, {device} ({torch.get_num_threads()} threads), "
          f"chunk {chunk_size_for(n, d, device)} candidates")
    print(f"drawing the normals only:                   {draws:10.0f} candidates/s")
    print(f"select_group, eager score:                  {eager:10.0f} candidates/s  ratio {eager / draws:.2f}")
    print(f"select_group, compiled score (as for large m): {compiled:7.0f} candidates/s  ratio {compiled / draws:.2f}"
          f" (goal >= 0.70; one-time compile {compile_seconds:.0f} s)")
    memory = {mm: peak_memory_mb(d, n, mm, device) for mm in (m // 10, m, m * 4)}
    print("peak RSS by m: " + ", ".join(f"m={k}: {v:.0f} MiB" for k, v in memory.items()))
    print(json.dumps({"ratio_eager": eager / draws, "ratio_compiled": compiled / draws, "peak_rss_mib": memory}))


if __name__ == "__main__":
    main()
