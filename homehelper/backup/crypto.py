"""Secrets in a backup: sealed with a passphrase, never in plain text.

AES-256-GCM (the `cryptography` package) under a key derived from the passphrase with scrypt
(n=2**15, r=8, p=1: 32 MiB and about 0.1 s on a Pi 5, per guess for an attacker too), a fresh
random salt and nonce per archive. GCM authenticates: a wrong passphrase and a changed byte
are both refused, never decrypted into garbage.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..errors import ValidationError

SCRYPT = {"n": 2**15, "r": 8, "p": 1}
AAD = b"homehelper-backup-secrets-v1"
MAX_PASSPHRASE = 4096


def read_passphrase(path: Path | str) -> str:
    """The passphrase in a file (its first line); refuses an empty one."""
    try:
        raw = Path(path).expanduser().read_bytes()[:MAX_PASSPHRASE]
    except OSError as exc:
        raise ValidationError(f"cannot read the passphrase file {path}: {exc.strerror or exc}") from None
    text = raw.decode("utf-8", "replace").splitlines()[0].strip() if raw.strip() else ""
    if len(text) < 8:
        raise ValidationError(f"the passphrase in {path} must be at least 8 characters")
    return text


def _key(passphrase: str, salt: bytes, params: dict[str, int]) -> bytes:
    return hashlib.scrypt(passphrase.encode(), salt=salt, n=params["n"], r=params["r"], p=params["p"],
                          maxmem=128 * 1024 * 1024, dklen=32)


def seal(plain: bytes, passphrase: str) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt, nonce = os.urandom(16), os.urandom(12)
    sealed = AESGCM(_key(passphrase, salt, SCRYPT)).encrypt(nonce, plain, AAD)
    box = {"cipher": "AES-256-GCM", "kdf": "scrypt", **SCRYPT, "salt": salt.hex(), "nonce": nonce.hex(),
           "data": base64.b64encode(sealed).decode()}
    return json.dumps(box).encode()


def unseal(box_bytes: bytes, passphrase: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        box: dict[str, Any] = json.loads(box_bytes)
        params = {k: int(box[k]) for k in ("n", "r", "p")}
        if box.get("cipher") != "AES-256-GCM" or box.get("kdf") != "scrypt" or params["n"] > 2**20 \
                or params["r"] > 32 or params["p"] > 16:
            raise ValueError("unknown cipher or key parameters")
        salt, nonce = bytes.fromhex(box["salt"]), bytes.fromhex(box["nonce"])
        sealed = base64.b64decode(box["data"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError(f"the archive's sealed secrets are damaged: {exc}") from None
    try:
        return AESGCM(_key(passphrase, salt, params)).decrypt(nonce, sealed, AAD)
    except (InvalidTag, ValueError):
        raise ValidationError("the passphrase does not open the archive's secrets (wrong passphrase, "
                              "or the secrets were changed)") from None
