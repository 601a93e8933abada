"""`kws-fleet keygen`: the fleet owner's Ed25519 signing key pair for model packages."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_node.ota.package import key_id

PRIVATE_NAME = "fleet.key"
PUBLIC_NAME = "fleet.pub"


def keygen(out: Path, force: bool = False) -> tuple[Path, Path, str]:
    """Write `out/fleet.key` (PKCS#8 PEM, mode 0600, created that way so it is never readable
    by others even for a moment) and `out/fleet.pub`; returns both paths and the key id."""
    out.mkdir(parents=True, exist_ok=True)
    private, public = out / PRIVATE_NAME, out / PUBLIC_NAME
    if private.exists() and not force:
        raise FileExistsError(f"{private} exists; refusing to replace a signing key "
                              "(--force replaces it, and nodes then need the new fleet.pub)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    private.unlink(missing_ok=True)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(private, 0o600)
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public, key_id(key.public_key())
