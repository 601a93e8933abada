"""Model packages: a .tflite, its manifest and an Ed25519 signature over the manifest.

The signature covers the manifest's canonical JSON (sorted keys, no spaces, ASCII), prefixed
with a domain tag so a signature made for anything else never verifies as a model. The
manifest carries the model's sha256 and size, so one signature check plus one hash check
prove the bytes came from the fleet owner. The package file is a zip (inspectable with any
unzip): `manifest.json` (exactly the signed bytes), `model.tflite` and `signature` (base64).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_node.model import Manifest, ModelError
from edge_node.ota.settings import OtaSettings

SIGNING_TAG = b"kws-model-package/1\n"
SHA256 = re.compile(r"[0-9a-f]{64}")
MEMBERS = ("manifest.json", "model.tflite", "signature")
LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A label becomes an MQTT topic level (`<base>/trigger/<label>`) and part of a Home Assistant
discovery id (`heard_<label>`): `+`, `#`, `/` or spaces would break both half-way."""
MAX_MEMBER_BYTES = {"manifest.json": 256 * 1024, "signature": 1024,
                    "model.tflite": OtaSettings.max_model_bytes}
"""Largest uncompressed size of each package member, checked before anything is inflated
(a small zip can claim gigabytes)."""


class PackageError(ValueError):
    """A package or offer that must not be installed; the message says why."""


def canonical(manifest: dict[str, Any]) -> bytes:
    """The exact bytes that are signed: the same for every JSON encoder of the same object."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False).encode()


def check_manifest(manifest: Any) -> Manifest:
    """A manifest fit for OTA: the node's own checks plus sha256 and size."""
    if not isinstance(manifest, dict):
        raise PackageError("manifest must be a JSON object")
    try:
        parsed = Manifest.from_json(manifest)
    except ModelError as exc:
        raise PackageError(f"bad manifest: {exc}") from exc
    bad = [label for label in parsed.labels if not LABEL.fullmatch(label)]
    if bad:
        raise PackageError(f"labels {bad} cannot be MQTT topic levels and Home Assistant ids: "
                           "use letters, digits, _ and - (at most 64)")
    if not SHA256.fullmatch(str(manifest.get("sha256", ""))):
        raise PackageError("manifest lacks a sha256 (64 lower-case hex digits)")
    size = manifest.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise PackageError("manifest lacks a positive integer 'size'")
    return parsed


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short fingerprint, shown in offers and logs to tell keys apart."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise PackageError(f"cannot read public key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise PackageError(f"{path} is not an Ed25519 public key")
    return key


def node_public_key(path: Path | None) -> tuple[Ed25519PublicKey | None, str]:
    """The key a node checks pushes with, or why it refuses every push (the node still runs)."""
    if path is None:
        return None, ("no OTA public key configured (ota.public_key or --ota-public-key): "
                      "model pushes are refused")
    try:
        return load_public_key(path), ""
    except PackageError as exc:
        return None, f"{exc}: model pushes are refused"


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PackageError(f"cannot read private key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise PackageError(f"{path} is not an Ed25519 private key")
    return key


def sign_manifest(manifest: dict[str, Any], key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.sign(SIGNING_TAG + canonical(manifest))).decode()


def verify_manifest(manifest: Any, signature: Any, key: Ed25519PublicKey) -> Manifest:
    """The parsed manifest if `signature` (base64) is the fleet key's; PackageError otherwise."""
    if not signature:
        raise PackageError("the model is unsigned (no signature)")
    if not isinstance(signature, str):
        raise PackageError("signature must be base64 text")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise PackageError("signature is not valid base64") from None
    if not isinstance(manifest, dict):
        raise PackageError("manifest must be a JSON object")
    try:
        key.verify(raw, SIGNING_TAG + canonical(manifest))
    except InvalidSignature:
        raise PackageError(
            f"signature does not verify with the node's public key {key_id(key)} "
            "(wrong key or altered manifest)") from None
    except ValueError as exc:
        raise PackageError(f"signature cannot be checked: {exc}") from exc
    return check_manifest(manifest)


@dataclass(frozen=True)
class Package:
    """A signed model, as read from or written to a package file."""

    manifest: dict[str, Any]
    model: bytes
    signature: str

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def check(self) -> None:
        """Hash and size agree with the manifest (the signature is the receiver's to check)."""
        check_manifest(self.manifest)
        if len(self.model) != self.manifest["size"]:
            raise PackageError(f"model is {len(self.model)} bytes, manifest says "
                               f"{self.manifest['size']}")
        if hashlib.sha256(self.model).hexdigest() != self.manifest["sha256"]:
            raise PackageError("model sha256 does not match the manifest")

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr("manifest.json", canonical(self.manifest))
            zf.writestr("model.tflite", self.model)
            zf.writestr("signature", self.signature + "\n")
        return buf.getvalue()

    def write(self, path: Path) -> Path:
        Path(path).write_bytes(self.to_bytes())
        return Path(path)

    @classmethod
    def read(cls, path: Path) -> Package:
        try:
            with zipfile.ZipFile(path) as zf:
                missing = [m for m in MEMBERS if m not in zf.namelist()]
                if missing:
                    raise PackageError(f"{path}: not a model package (lacks {missing})")
                for member, limit in MAX_MEMBER_BYTES.items():
                    size = zf.getinfo(member).file_size
                    if size > limit:
                        raise PackageError(f"{path}: {member} would inflate to {size} bytes, "
                                           f"more than {limit}")
                manifest = json.loads(zf.read("manifest.json"))
                model = zf.read("model.tflite")
                signature = zf.read("signature").decode().strip()
        except (OSError, zipfile.BadZipFile, ValueError) as exc:
            raise PackageError(f"{path}: not a readable model package: {exc}") from exc
        package = cls(manifest, model, signature)
        package.check()
        return package


def build_package(model_path: Path, key: Ed25519PrivateKey, version: str | None = None,
                  manifest: dict[str, Any] | None = None) -> Package:
    """Sign `model_path` with the manifest beside it (or `manifest`), hash and size filled in."""
    model = Path(model_path).read_bytes()
    if manifest is None:
        json_path = Path(model_path).with_suffix(".json")
        try:
            manifest = json.loads(json_path.read_text())
        except (OSError, ValueError) as exc:
            raise PackageError(f"cannot read the manifest {json_path}: {exc}") from exc
    manifest = dict(manifest)
    if version is not None:
        manifest["version"] = version
    manifest["sha256"] = hashlib.sha256(model).hexdigest()
    manifest["size"] = len(model)
    check_manifest(manifest)
    return Package(manifest, model, sign_manifest(manifest, key))
