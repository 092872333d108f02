"""Signed checkpoints in the C2SP signed-note / tlog-checkpoint form, with Ed25519.

    <origin>\n<tree size>\n<base64 root hash>\n
    \n
    — <key name> <base64(4-byte key hash || 64-byte signature)>\n

The verifier key is `<name>+<hex key hash>+<base64(0x01 || public key)>`; the key hash is
the first 4 bytes of SHA-256(name || "\n" || 0x01 || public key).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = b"\x01"
KEY_FILE = "checkpoint-ed25519.pem"  # in the audit service's part of the data dir
RETIRED_KEYS_FILE = "retired-verifier-keys.txt"  # beside it: one verifier key a line
EM_DASH = "\u2014"


def key_hash(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


class Verifier:
    def __init__(self, name: str, public: bytes) -> None:
        self.name = name
        self.public = public
        self._key = Ed25519PublicKey.from_public_bytes(public)
        self.hash = key_hash(name, public)

    def vkey(self) -> str:
        encoded = base64.b64encode(ED25519 + self.public).decode()
        return f"{self.name}+{self.hash.hex()}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        try:
            name, hex_hash, encoded = vkey.strip().split("+", 2)
            raw = base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise ValueError(f"not a verifier key: {exc}") from None
        if raw[:1] != ED25519 or len(raw) != 33:
            raise ValueError("not an Ed25519 verifier key")
        verifier = cls(name, raw[1:])
        if verifier.hash.hex() != hex_hash:
            raise ValueError("verifier key hash does not match its key")
        return verifier

    def open(self, note: str) -> Checkpoint:
        """Parse a signed note and check its signature by this key; raise ValueError if not."""
        body, sep, signatures = note.partition("\n\n")
        if not sep:
            raise ValueError("a signed note has a blank line between text and signatures")
        body += "\n"
        for line in signatures.splitlines():
            parts = line.split(" ")
            if len(parts) != 3 or parts[0] != EM_DASH or parts[1] != self.name:
                continue
            sig = base64.b64decode(parts[2])
            if sig[:4] != self.hash:
                continue
            try:
                self._key.verify(sig[4:], body.encode())
            except InvalidSignature:
                raise ValueError(f"bad signature by {self.name}") from None
            return _parse_body(body)
        raise ValueError(f"no signature by {self.name}")


def parse_note(note: str) -> Checkpoint:
    """The checkpoint a signed note states, without checking its signature."""
    body, sep, _signatures = note.partition("\n\n")
    if not sep:
        raise ValueError("a signed note has a blank line between text and signatures")
    return _parse_body(body + "\n")


def _parse_body(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) < 4 or not lines[1].isdigit():
        raise ValueError("checkpoint body is origin, size and root hash")
    return Checkpoint(lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True))


class Signer:
    """The log's Ed25519 key, generated on first start and kept in the data dir (0600)."""

    def __init__(self, name: str, private: Ed25519PrivateKey) -> None:
        self.name = name
        self._private = private
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.verifier = Verifier(name, public)

    @classmethod
    def load_or_create(cls, path: Path, name: str) -> Signer:
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"{path} is not an Ed25519 key")
            return cls(name, key)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return cls(name, key)

    def sign(self, checkpoint: Checkpoint) -> str:
        body = checkpoint.body()
        sig = self.verifier.hash + self._private.sign(body.encode())
        return f"{body}\n{EM_DASH} {self.name} {base64.b64encode(sig).decode()}\n"


class NoteVerifier(Protocol):
    def open(self, note: str) -> Checkpoint: ...

    def vkey(self) -> str: ...


class Keyring:
    """Every key the log has signed with: the current one first, then the retired ones, so
    checkpoints signed before a key rotation still verify."""

    def __init__(self, verifiers: Sequence[Verifier]) -> None:
        if not verifiers:
            raise ValueError("a keyring holds at least one verifier key")
        self.verifiers = list(verifiers)

    def vkey(self) -> str:
        """The current key's."""
        return self.verifiers[0].vkey()

    def vkeys(self) -> list[str]:
        return [v.vkey() for v in self.verifiers]

    def open(self, note: str) -> Checkpoint:
        """Check the signature of whichever of these keys signed the note."""
        _body, _sep, signatures = note.partition("\n\n")
        for line in signatures.splitlines():
            parts = line.split(" ")
            if len(parts) != 3 or parts[0] != EM_DASH:
                continue
            try:
                tag = base64.b64decode(parts[2])[:4]
            except ValueError:
                continue
            for verifier in self.verifiers:
                if verifier.name == parts[1] and verifier.hash == tag:
                    return verifier.open(note)
        raise ValueError("signed by none of the log's keys")

    @classmethod
    def from_text(cls, text: str) -> Keyring:
        return cls([Verifier.from_vkey(line) for line in text.splitlines() if line.strip()])


def load_keyring(audit_dir: Path, current: Verifier) -> Keyring:
    retired = audit_dir / RETIRED_KEYS_FILE
    text = retired.read_text() if retired.exists() else ""
    return Keyring([current, *Keyring.from_text(text).verifiers] if text.strip() else [current])


def rotate(audit_dir: Path, name: str) -> tuple[Verifier, Verifier]:
    """Retire the signing key (its verifier key is kept, so what it signed still verifies; the
    private key is destroyed) and make a new one. Run with the audit service stopped."""
    path = audit_dir / KEY_FILE
    if not path.exists():
        raise FileNotFoundError(f"no signing key at {path}")
    old = Signer.load_or_create(path, name).verifier
    retired = audit_dir / RETIRED_KEYS_FILE
    with retired.open("a") as f:  # first, durably: the old key must never be lost
        f.write(old.vkey() + "\n")
        f.flush()
        os.fsync(f.fileno())
    path.unlink()
    new = Signer.load_or_create(path, name).verifier
    fd = os.open(audit_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return old, new
