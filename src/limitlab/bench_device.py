"""Which device ``limitlab bench`` runs on, and the peak FLOP/s its MFU is relative to.

On CUDA the peak is the device's bf16 dense datasheet figure (:data:`PEAK_BF16`, matched by name; an unknown GPU
needs ``--peak-flops``); on a CPU it is measured: the best of a few fp32 ``torch.mm`` 1024³, so CPU "MFU" is
relative to what this CPU's sgemm reaches in the same run (and moves with load, which is recorded too).
"""

from __future__ import annotations

import math
import os
import time

import torch

from limitlab.train.chunking import cpu_caches, cpu_name

# bf16 dense tensor-core peaks (no sparsity), FLOP/s. Matched against torch.cuda.get_device_name(), first hit.
PEAK_BF16 = [
    ("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12), ("H200", 989e12), ("GH200", 989e12),
    ("B200", 2250e12), ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12), ("L4", 121e12),
    ("A10G", 0.0), ("A10", 125e12),  # A10G: no datasheet figure we trust -> unknown, pass --peak-flops
]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def device_info(device: str, peak_override: float = 0.0) -> dict:
    """Device name, the peak used for MFU and where it comes from, the CPU's model and caches."""
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
        peak = next((p for key, p in PEAK_BF16 if key.lower() in name.lower()), 0.0)
        source = "bf16 dense datasheet" if peak else "unknown device: pass --peak-flops"
    else:
        name = f"{cpu_name()} CPU, {torch.get_num_threads()} threads"
        peak, source = measure_cpu_peak(), "fp32 torch.mm 1024³, measured"
    if peak_override:
        peak, source = peak_override, "--peak-flops"
    return {"device": device, "name": name, "peak_flops": peak or None, "peak_source": source,
            "cpu": cpu_name(), "caches": cpu_caches(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "load_avg": load_average()}


def measure_cpu_peak(n: int = 1024, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
