"""Signed model packages for OTA tests: good ones and every kind of bad one, made with the
real `kws-fleet keygen` / `sign` code."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from edge_node.model import DEFAULT_MODEL
from edge_node.ota.package import Package, build_package, load_private_key
from provisioning.keys import keygen

MANIFEST = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())


@dataclass(frozen=True)
class Keys:
    private: Path
    public: Path
    other_private: Path
    other_public: Path


def make_keys(folder: Path) -> Keys:
    private, public, _ = keygen(folder / "fleet")
    other_private, other_public, _ = keygen(folder / "stranger")
    return Keys(private, public, other_private, other_public)


def good(keys: Keys, version: str) -> Package:
    """The bundled model under a new version: it passes every check."""
    return build_package(DEFAULT_MODEL, load_private_key(keys.private), version)


def signed_file(keys: Keys, folder: Path, name: str, data: bytes, manifest: dict) -> Package:
    path = folder / f"{name}.tflite"
    path.write_bytes(data)
    return build_package(path, load_private_key(keys.private), manifest=manifest)


def bad_packages(keys: Keys, folder: Path) -> dict[str, tuple[Package, str]]:
    """name -> (package, text the node's reason must contain)."""
    folder.mkdir(parents=True, exist_ok=True)
    model = DEFAULT_MODEL.read_bytes()
    base = good(keys, "6.6.6")
    stft = {**MANIFEST, "version": "6.6.7", "features": {"profile": "stft129x124",
                                                          "params": {}}}
    labels = MANIFEST["labels"]
    shuffled = {**MANIFEST, "version": "6.6.8", "labels": labels[4:8] + labels[:4] + labels[8:]}
    tampered = replace(base, manifest={**base.manifest, "version": "9.9.9"})
    return {
        "unsigned": (replace(base, signature=""), "unsigned"),
        "wrong key": (build_package(DEFAULT_MODEL, load_private_key(keys.other_private),
                                    "6.6.1"), "does not verify"),
        "tampered manifest": (tampered, "does not verify"),
        "wrong input shape": (signed_file(keys, folder, "shape", model, stft), "input shape"),
        "not tflite": (signed_file(keys, folder, "text", b"this is not a model\n" * 500,
                                   {**MANIFEST, "version": "6.6.9"}),
                       "not a loadable TFLite model"),
        "fails self-test": (signed_file(keys, folder, "shuffled", model, shuffled),
                            "self-test"),
    }
