"""Writes that survive a power cut: fsynced files and directories, atomically replaced JSON.

Kept apart from the transfer code so the installed-model store (`edge_node.ota.install`),
which every node opens at start, imports nothing of the signature checking (cryptography
costs ~8 MB of RAM, issue 22) until an update arrives.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def fsync_file(path: Path) -> None:
    """Make a written file's contents survive a power cut."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    """Old or new contents after a power cut, never a mix or an empty file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(data, indent=1, sort_keys=True))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
