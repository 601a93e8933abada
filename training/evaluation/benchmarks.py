"""Write one benchmark's section into BENCHMARKS.md, replacing that section's previous text.

Used by `kws-train --benchmarks` and the `bench/` scripts; it lives in the installed `training`
package so the `kws-train` console script finds it from any directory.
"""

from __future__ import annotations

import platform
import re
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "BENCHMARKS.md"
HEADER = ("# Benchmarks\n\nWritten by the scripts in `bench/` (and `kws-train`); each section "
          "says how to rerun it.\n")


def machine() -> str:
    import os

    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d')}")


def write_section(key: str, title: str, body: str, path: Path = BENCHMARKS) -> None:
    """Replace (or append) the section between `<!-- key -->` markers."""
    text = path.read_text() if path.exists() else HEADER
    block = f"<!-- {key} -->\n## {title}\n\n{body.rstrip()}\n<!-- /{key} -->"
    pattern = re.compile(rf"<!-- {re.escape(key)} -->.*?<!-- /{re.escape(key)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else (
        text.rstrip() + "\n\n" + block + "\n")
    path.write_text(text)


def record_training(report: dict, benchmarks: Path, name: str, arch: str, command: str) -> None:
    """Write a training run's figures into a BENCHMARKS.md."""
    from training.evaluation.report import benchmark_summary

    write_section(f"training-{name}", f"Training: {name} ({arch})",
                  benchmark_summary(report, command), benchmarks)
