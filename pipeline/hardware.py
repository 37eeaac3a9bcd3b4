"""What a device is and can do, for throughput reports: its name and its dense peak FLOP/s, so that a run's
model FLOP utilisation (MFU: achieved model FLOP/s over the peak) can be stated.

Peaks are the vendors' dense tensor-core rates; fp32 means TF32 on GPUs (which the pipeline enables). A CPU's
peak is a rough estimate: threads × clock × FLOPs per cycle per core from its instruction set (AVX-512: 64
fp32, AVX2: 32; AMX: 1024 bf16).
"""
from __future__ import annotations

import contextlib
import platform
from pathlib import Path

import torch

GPU_PEAK = {  # name fragment → dense FLOP/s by precision, checked in this order
    "H200": {"bf16": 989e12, "fp16": 989e12, "fp32": 494.5e12},
    "H100 PCIe": {"bf16": 756e12, "fp16": 756e12, "fp32": 378e12},
    "H100 NVL": {"bf16": 835e12, "fp16": 835e12, "fp32": 417.5e12},
    "H100": {"bf16": 989e12, "fp16": 989e12, "fp32": 494.5e12},  # SXM
    "A100": {"bf16": 312e12, "fp16": 312e12, "fp32": 156e12},
}


def _cpuinfo() -> list[str]:
    with contextlib.suppress(OSError):
        return Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    return []


def cpu_name() -> str:
    names = [line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")]
    return names[0] if names else platform.processor() or "CPU"


def cpu_peak(precision: str) -> float:
    """Rough: threads × clock × FLOPs/cycle per core (see the module docstring)."""
    flags, mhz = set(), 2500.0
    for line in _cpuinfo():
        if line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
        elif line.startswith("cpu MHz"):
            mhz = max(mhz, float(line.split(":", 1)[1]))
    per_cycle = 64 if "avx512f" in flags else 32 if "avx2" in flags else 16
    if precision == "bf16" and "amx_bf16" in flags:
        per_cycle = 1024
    return torch.get_num_threads() * mhz * 1e6 * per_cycle


def device_peak(device: torch.device, precision: str) -> float | None:
    """Dense peak FLOP/s of `device` in `precision` (bf16 | fp16 | fp32); None for a GPU not in GPU_PEAK."""
    if device.type == "cpu":
        return cpu_peak(precision)
    name = torch.cuda.get_device_name(device)
    return next((peaks[precision] for fragment, peaks in GPU_PEAK.items() if fragment in name), None)
