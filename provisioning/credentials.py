"""Broker passwords: random per account, kept in a 0600 file so re-rendering keeps them, and
hashed for Mosquitto's password_file in its own PBKDF2-SHA512 format (`$7$`, what
`mosquitto_passwd` 2.0 writes), so rendering needs no Mosquitto on the fleet owner's machine."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

import yaml

ITERATIONS = 101
"""mosquitto_passwd 2.0's count; the passwords are 192-bit random, so stretching adds nothing,
while a broker checking 1000 reconnecting nodes pays for every iteration."""


def new_password() -> str:
    return secrets.token_urlsafe(24)


def mosquitto_hash(password: str, salt: bytes | None = None,
                   iterations: int = ITERATIONS) -> str:
    salt = salt or os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return (f"$7${iterations}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


def write_private(path: Path, text: str) -> None:
    """Write a secret: created 0600 (never world-readable, not even for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_passwords(path: Path, users: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Stored passwords of `users`, with new ones made for users that had none; the new
    users' names. Users no longer listed are dropped (their broker access ends). Nothing is
    written: the caller saves them (`write_private`) once everything else checked out."""
    stored = yaml.safe_load(path.read_text()) if path.exists() else {}
    stored = stored if isinstance(stored, dict) else {}
    out, created = {}, []
    for user in users:
        password = stored.get(user)
        if not isinstance(password, str) or not password:
            password = new_password()
            created.append(user)
        out[user] = password
    return out, created


def password_file(passwords: dict[str, str]) -> str:
    return "".join(f"{user}:{mosquitto_hash(pw)}\n" for user, pw in sorted(passwords.items()))
