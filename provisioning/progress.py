"""Progress bars for fleet-wide operations: tqdm on a terminal's stderr when installed (the
`fleet` extra), silent otherwise, so the tools also run on a bare node install."""

from __future__ import annotations

from typing import Any


class _Silent:
    def update(self, n: int = 1) -> None:
        """Nothing to draw."""

    def close(self) -> None:
        """Nothing to close."""


def bar(total: int, desc: str, unit: str = "node") -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return _Silent()
    return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=None)
