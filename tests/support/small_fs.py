"""Small real filesystems for disk faults: a tmpfs of a few hundred KB that fills up for real,
and a loop-mounted ext4 that turns read-only under a running writer the way a failing SD card
does (ext4's errors=remount-ro). Needs root (CAP_SYS_ADMIN); tests skip without it."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@contextmanager
def small_fs(folder: Path, size_kb: int = 512) -> Iterator[Path]:
    """A tmpfs of `size_kb` at `folder` for the duration of the block."""
    folder.mkdir(parents=True, exist_ok=True)
    done = _mount("-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder))
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def fill(folder: Path, name: str = "filler") -> Path:
    """Write until the filesystem says it is full; remove the file to free the space."""
    path = folder / name
    block = b"\0" * 4096
    with path.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return path


@contextmanager
def ext4_fs(folder: Path, size_mb: int = 4) -> Iterator[Path]:
    """A loop-mounted ext4 image at `folder`, mounted with errors=remount-ro."""
    image = folder.with_name(folder.name + ".img")
    with image.open("wb") as out:
        out.truncate(size_mb << 20)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True, capture_output=True)
    folder.mkdir(parents=True, exist_ok=True)
    done = _mount("-o", "loop,errors=remount-ro", str(image), str(folder))
    if done.returncode:
        pytest.skip(f"cannot loop-mount ext4 here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def fail_to_read_only(folder: Path) -> None:
    """Make ext4 hit an error: the kernel remounts it read-only under its open files."""
    source = subprocess.run(["findmnt", "-no", "SOURCE", str(folder)], capture_output=True,
                            text=True, check=True).stdout.strip()
    Path(f"/sys/fs/ext4/{Path(source).name}/trigger_fs_error").write_text("1")
    options = subprocess.run(["findmnt", "-no", "OPTIONS", str(folder)], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert {"ro", "emergency_ro"} & set(options.split(",")), options
