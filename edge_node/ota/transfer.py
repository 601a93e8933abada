"""Offers and chunk reassembly: chunks in any order, duplicates ignored, resumable.

Chunks are written in place into a staging file of the announced size. Which chunks are on
disk is recorded in a small JSON file beside it, written only after the staging file was
fsynced, so after a crash or power cut every chunk listed is really there and the transfer
resumes with the rest.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_node import topics
from edge_node.model import file_sha256
from edge_node.ota.durable import write_json_atomic
from edge_node.ota.faults import maybe_die
from edge_node.ota.package import PackageError, check_manifest, verify_manifest

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

log = logging.getLogger(__name__)

TRANSFER_ID = re.compile(r"[0-9a-f]{8,64}")
OFFER_FORMAT = 1
MAX_OFFER_BYTES = 256 * 1024
SYNC_EVERY = 16
"""Chunks between fsyncs of the staging file (a crash re-downloads at most this many)."""


@dataclass(frozen=True)
class Offer:
    """A model offered on an `.../model/offer` topic (not yet signature-checked)."""

    transfer: str
    manifest: dict[str, Any]
    signature: str
    size: int
    chunk_size: int
    chunks: int
    auto_install: bool
    pushed_at: float
    scope: str
    """Topic prefix the offer and its chunks live under, e.g. `kws/_fleet/model`."""
    release_summary: str = ""

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "?"))

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", "?"))

    def chunk_filter(self) -> str:
        return topics.chunk_topic(self.scope, self.transfer, "+")

    def chunk_length(self, index: int) -> int:
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def to_json(self) -> dict[str, Any]:
        return {"format": OFFER_FORMAT, "transfer": self.transfer, "manifest": self.manifest,
                "signature": self.signature, "size": self.size, "chunk_size": self.chunk_size,
                "chunks": self.chunks, "auto_install": self.auto_install,
                "pushed_at": self.pushed_at, "release_summary": self.release_summary}


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PackageError(f"offer '{key}' must be a non-negative integer, got {value!r}")
    return value


def parse_offer(payload: bytes, scope: str, max_bytes: int, max_chunk: int) -> Offer:
    """Check an offer's structure and limits; PackageError says what is wrong."""
    if len(payload) > MAX_OFFER_BYTES:
        raise PackageError(f"offer of {len(payload)} bytes is too long")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PackageError(f"offer is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PackageError("offer must be a JSON object")
    if data.get("format", OFFER_FORMAT) != OFFER_FORMAT:
        raise PackageError(f"offer format {data.get('format')!r} is not {OFFER_FORMAT}")
    transfer = data.get("transfer")
    if not isinstance(transfer, str) or not TRANSFER_ID.fullmatch(transfer):
        raise PackageError("offer 'transfer' must be 8-64 lower-case hex digits")
    manifest = data.get("manifest")
    if not isinstance(manifest, dict):
        raise PackageError("manifest must be a JSON object")
    check_manifest(manifest)
    size, chunk_size, chunks = (_int(data, k) for k in ("size", "chunk_size", "chunks"))
    if size != manifest["size"]:
        raise PackageError(f"offer size {size} differs from the manifest's {manifest['size']}")
    if size > max_bytes:
        raise PackageError(f"model of {size} bytes exceeds this node's limit of {max_bytes}")
    if not 1 <= chunk_size <= max_chunk:
        raise PackageError(f"chunk size {chunk_size} is outside 1..{max_chunk}")
    if chunks != math.ceil(size / chunk_size):
        raise PackageError(f"{chunks} chunks cannot hold {size} bytes in chunks of "
                           f"{chunk_size}")
    pushed_at = data.get("pushed_at", 0.0)
    if isinstance(pushed_at, bool) or not isinstance(pushed_at, int | float) or \
            not math.isfinite(pushed_at):
        raise PackageError("offer 'pushed_at' must be a finite number")
    auto = data.get("auto_install", True)
    if not isinstance(auto, bool):
        raise PackageError("offer 'auto_install' must be true or false")
    summary = data.get("release_summary", "")
    return Offer(transfer=transfer, manifest=manifest, signature=data.get("signature") or "",
                 size=size, chunk_size=chunk_size, chunks=chunks, auto_install=auto,
                 pushed_at=float(pushed_at), scope=scope,
                 release_summary=str(summary)[:255])


class Transfer:
    """Reassembles one offer's chunks into `<staging>/<transfer>.part`."""

    def __init__(self, offer: Offer, staging: Path) -> None:
        self.offer = offer
        staging.mkdir(parents=True, exist_ok=True)
        self.part = staging / f"{offer.transfer}.part"
        self.record = staging / f"{offer.transfer}.json"
        self.have: set[int] = set()
        self.rejected = 0
        self.last_chunk = time.monotonic()
        self.requests = 0
        self._unsynced = 0
        self._resume()
        self._fh = open(self.part, "r+b")

    def _resume(self) -> None:
        try:
            saved = json.loads(self.record.read_text())
            if saved.get("offer") == self.offer.to_json() and self.part.is_file():
                self.have = {i for i in saved.get("have", []) if 0 <= i < self.offer.chunks}
        except (OSError, ValueError, AttributeError, TypeError):
            self.have = set()
        if not self.have:
            with open(self.part, "wb") as fh:
                fh.truncate(self.offer.size)
        else:
            log.info("OTA: resuming transfer %s with %d of %d chunks on disk",
                     self.offer.transfer, len(self.have), self.offer.chunks)

    @property
    def complete(self) -> bool:
        return len(self.have) == self.offer.chunks

    @property
    def progress(self) -> float:
        return 100.0 * len(self.have) / self.offer.chunks

    def missing(self) -> list[int]:
        return [i for i in range(self.offer.chunks) if i not in self.have]

    def add(self, index_text: str, payload: bytes) -> bool:
        """Store one chunk; False for a duplicate. ValueError for a chunk that cannot be one
        of this offer's (wrong index or length)."""
        if not index_text.isdigit() or int(index_text) >= self.offer.chunks:
            raise ValueError(f"chunk index {index_text!r} is not within 0..{self.offer.chunks - 1}")
        index = int(index_text)
        want = self.offer.chunk_length(index)
        if len(payload) != want:
            raise ValueError(f"chunk {index} has {len(payload)} bytes, expected {want}")
        self.last_chunk = time.monotonic()
        if index in self.have:
            return False
        self._fh.seek(index * self.offer.chunk_size)
        self._fh.write(payload)
        self.have.add(index)
        self._unsynced += 1
        halfway = len(self.have) == self.offer.chunks // 2
        if self._unsynced >= SYNC_EVERY or self.complete or halfway:
            self.sync()
        if halfway:
            maybe_die("chunk")
        return True

    def sync(self) -> None:
        """Data first, then the list of chunks that are on disk."""
        self._fh.flush()
        os.fsync(self._fh.fileno())
        write_json_atomic(self.record, {"offer": self.offer.to_json(), "have": sorted(self.have)})
        self._unsynced = 0

    def verify(self, key: Ed25519PublicKey) -> None:
        """The staged file is the signed model: signature, size and sha256, or PackageError."""
        offer = self.offer
        verify_manifest(offer.manifest, offer.signature, key)
        size = self.part.stat().st_size
        if size != offer.size:
            raise PackageError(f"downloaded {size} bytes, manifest says {offer.size}")
        if file_sha256(self.part) != offer.manifest["sha256"]:
            raise PackageError("sha256 of the downloaded model does not match the signed "
                               "manifest (corrupt or altered chunks)")

    def close(self) -> None:
        if not self._fh.closed:
            if self._unsynced:
                self.sync()
            self._fh.close()

    def discard(self) -> None:
        """Remove the staging files; never raises (a full disk must not stop the cleanup)."""
        if not self._fh.closed:
            try:
                self._fh.close()
            except OSError as exc:
                log.warning("OTA: dropping unwritten chunks of %s: %s", self.offer.transfer,
                            exc)
        for path in (self.part, self.record, self.record.with_name(self.record.name + ".tmp")):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("OTA: cannot remove %s: %s", path, exc)


def encode_request(transfer: str, missing: list[int], limit: int = 512) -> str:
    """`.../model/request` payload: the first `limit` missing chunk indices."""
    return json.dumps({"transfer": transfer, "missing": missing[:limit],
                       "total_missing": len(missing)})
