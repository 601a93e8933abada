"""What a training run was made with, so that runs compared fold by fold can be checked to be
like for like.

Training is repeatable bit for bit only with the same libraries and the same feature rows: the
same recipe on the same speaker fold, trained on two machines each set up afresh (data made
again, libraries installed again), took 1.5% and 3.2% of the fold's other words for a
command. A comparison that pairs runs made with different libraries, or scored on different
test rows, mixes the recipe with the machine.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

LIBRARIES = ("tensorflow-cpu", "tensorflow", "keras", "numpy", "ai-edge-litert")
"""The packages whose versions decide what a training run computes."""


def environment() -> dict[str, str]:
    """Python and the versions of the installed `LIBRARIES` (those that are installed)."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def digest(array: np.ndarray) -> str:
    """A short fingerprint of an array's shape, type and bytes."""
    contiguous = np.ascontiguousarray(array)
    hasher = hashlib.sha256(f"{contiguous.dtype}{contiguous.shape}".encode())
    hasher.update(memoryview(contiguous).cast("B"))  # no copy of a large array
    return hasher.hexdigest()[:16]


def provenance(x_train: np.ndarray, x_test: np.ndarray) -> dict[str, Any]:
    """A run's environment and the fingerprints of the rows it trained and was tested on."""
    return {"environment": environment(), "train_rows": digest(x_train),
            "test_rows": digest(x_test)}


def mismatches(runs: Mapping[str, Mapping[int, Mapping[str, Any] | None]],
               folds: Sequence[int]) -> list[str]:
    """Why runs paired fold by fold are not like for like: per run name, per fold, the
    `provenance` its result kept (None for runs made before it was kept). One line per
    difference, none when they match or cannot be checked."""
    lines: list[str] = []
    environments: dict[str, set[tuple[tuple[str, str], ...]]] = {
        name: {tuple(sorted(per_fold[k]["environment"].items())) for k in folds
               if per_fold.get(k)} for name, per_fold in runs.items()}
    for name, found in environments.items():
        if len(found) > 1:
            lines.append(f"{name}: its folds were trained with different libraries.")
    known = {name: next(iter(found)) for name, found in environments.items()
             if len(found) == 1}
    if len(set(known.values())) > 1:
        described = "; ".join(f"{name}: " + ", ".join(f"{k} {v}" for k, v in env)
                              for name, env in known.items())
        lines.append(f"The runs were trained with different libraries ({described}), so the "
                     "differences mix the recipe with the machine.")
    unknown = [name for name, found in environments.items() if not found]
    if unknown:
        lines.append(f"{', '.join(unknown)}: made before runs kept their libraries; "
                     "not checked.")
    for k in folds:
        tests = {per_fold[k]["test_rows"] for per_fold in runs.values()
                 if per_fold.get(k) is not None}
        if len(tests) > 1:
            lines.append(f"Fold {k} was tested on different rows in different runs (another "
                         "frontend, data set or split): its pairs are not like for like.")
    return lines
