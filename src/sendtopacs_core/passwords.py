"""The API password: stored only as a salted scrypt hash, checked in constant time.

:func:`hash_password` gives ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>``; :func:`verify_password`
recomputes it and compares with :func:`hmac.compare_digest`. The policy (:func:`password_problems`)
is the MedDream manual's (at least 12 characters with upper and lower case letters, digits and
special characters) plus an offline list of common and breached passwords.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Final

__all__ = ["PASSWORD_MIN_LENGTH", "hash_password", "password_problems", "verify_password"]

PASSWORD_MIN_LENGTH: Final = 12
_N: Final = 2**14
_R: Final = 8
_P: Final = 1
_LENGTH: Final = 32


def hash_password(password: str) -> str:
    """A new salted scrypt hash of ``password`` (``scrypt$n$r$p$salt$hash``)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=_LENGTH)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time; a malformed hash never matches)."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode("utf-8", "surrogatepass"),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected) // 2,
            maxmem=256 << 20,
        )
        return hmac.compare_digest(digest, bytes.fromhex(expected))
    except (ValueError, TypeError, MemoryError):
        return False


def password_problems(password: str, *, username: str | None = None) -> list[str]:
    """Why ``password`` is refused (empty: it is acceptable).

    Placeholder for the full policy (written next): length and the four character classes.
    """
    problems = []
    if len(password) < PASSWORD_MIN_LENGTH:
        problems.append(f"at least {PASSWORD_MIN_LENGTH} characters are needed")
    classes = (
        (str.islower, "a lower-case letter"),
        (str.isupper, "an upper-case letter"),
        (str.isdigit, "a digit"),
        (lambda c: not c.isalnum(), "a special character"),
    )
    for test, what in classes:
        if not any(test(c) for c in password):
            problems.append(f"{what} is needed")
    if username and username.lower() in password.lower():
        problems.append("the password must not contain the user name")
    return problems
