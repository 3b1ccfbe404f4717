"""The software and hardware a report was made with: what someone comparing numbers needs to know first.

Recorded by the job that writes the report; on a cluster the registration jobs may have run elsewhere (their
own logs name the method's settings), so the page says so.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("regbench", "numpy", "scipy", "torch", "nibabel", "pandas", "snakemake", "matplotlib", "seaborn")


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one (Linux), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def gpu_names() -> list[str]:
    """Names of the CUDA devices torch sees (none on a CPU-only machine)."""
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]


def environment() -> dict[str, str]:
    """Python, operating system, package versions, CPU (model and cores) and GPUs, as display strings."""
    info = {"python": platform.python_version(), "platform": platform.platform()}
    for package in PACKAGES:
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "not installed"
    info["cpu"] = f"{cpu_name()} ({os.cpu_count()} logical cores)"
    info["gpu"] = ", ".join(gpu_names()) or "none"
    info["torch CUDA build"] = torch.version.cuda or "none (CPU build)"
    return info
