"""The software and hardware a report was made with: what someone comparing numbers needs to know first.

Recorded by the job that writes the report; on a cluster the registration jobs may have run elsewhere (their
own logs name the method's settings), so the page says so. Besides the regbench version, the commit it runs
from: the version number stays the same between commits. Cheap to import (torch is imported only to name
the GPUs), so ``regbench --version`` can use ``regbench_commit``.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

# regbench itself, the libraries its numbers depend on, the tools benchmarked (antspyx: ants, itk-elastix:
# elastix), and what runs and draws it
PACKAGES = ("regbench", "numpy", "scipy", "torch", "antspyx", "itk-elastix", "nibabel", "pandas", "snakemake",
            "matplotlib", "seaborn")
SOURCE = Path(__file__).resolve().parents[1]  # the regbench package folder
UNKNOWN = "unknown"


def _git(source: Path, *args: str) -> str:
    """A read-only git command's output in ``source``; raises if git fails or is absent."""
    return subprocess.run(["git", "--no-optional-locks", *args], cwd=source, capture_output=True, text=True,
                          check=True, timeout=30).stdout.strip()


def regbench_commit(source: Path = SOURCE) -> str:
    """The commit regbench runs from (``git rev-parse HEAD``), "(modified)" after it when tracked files differ
    from it; ``UNKNOWN`` where ``source`` is not tracked by git (an installed wheel, no git at all)."""
    try:
        _git(source, "ls-files", "--error-unmatch", "--", "__init__.py")
        commit = _git(source, "rev-parse", "HEAD")
        modified = _git(source, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return f"{commit} (modified)" if modified else commit


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
    import torch

    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]


def package_version(package: str) -> str:
    """The installed version of a distribution, or "not installed"."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, str]:
    """Python, operating system, the regbench commit, package versions, CPU (model and cores) and GPUs, as
    display strings."""
    import torch

    info = {"python": platform.python_version(), "platform": platform.platform(),
            "regbench commit": regbench_commit()}
    info.update({package: package_version(package) for package in PACKAGES})
    info["cpu"] = f"{cpu_name()} ({os.cpu_count()} logical cores)"
    info["gpu"] = ", ".join(gpu_names()) or "none"
    info["torch CUDA build"] = torch.version.cuda or "none (CPU build)"
    return info
