"""How long generating every built-in synthetic task takes (target: all five at default scale under a minute
on 2 cores). Run on demand: ``python benchmarks/bench_generate_tasks.py [--scale default] [--out DIR]``."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from regbench.tasks.generate import make_task
from regbench.tasks.spec import list_tasks, load_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="default", choices=["smoke", "default", "paper"])
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        total = 0.0
        for name in list_tasks():
            if not load_spec(name).synthetic:
                continue
            start = time.perf_counter()
            make_task(name, out / name, scale=args.scale)
            seconds = time.perf_counter() - start
            total += seconds
            size_mb = sum(p.stat().st_size for p in (out / name).rglob("*") if p.is_file()) / 1e6
            print(f"{name:14s} {seconds:6.1f} s  {size_mb:6.1f} MB")
        print(f"{'all':14s} {total:6.1f} s  (scale {args.scale})")


if __name__ == "__main__":
    main()
