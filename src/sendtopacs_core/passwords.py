"""The API password: stored only as a salted scrypt hash, checked in constant time.

:func:`hash_password` gives ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>``; :func:`verify_password`
recomputes it and compares with :func:`hmac.compare_digest`. The policy (:func:`password_problems`)
is the MedDream manual's (at least 12 characters with upper and lower case letters, digits and
special characters) plus what NIST SP 800-63B asks for, all offline: no common or breached
password (the 30 000 of ``data/common_passwords.txt``) under the usual mangling, no keyboard walk
or repeated pattern, no season or word followed by a year, not the user name.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib.resources
import itertools
import os
import re
from collections.abc import Iterator
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
    secret = password.encode("utf-8", "surrogatepass")
    digest = hashlib.scrypt(secret, salt=salt, n=_N, r=_R, p=_P, dklen=_LENGTH)
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


_MAX_LENGTH: Final = 1024
_MAX_FILLER: Final = 16
_CONTEXT_WORDS: Final = ("sendtopacs",)
_SEASON_WORDS: Final = """
    spring summer autumn fall winter january february march april may june july august
    september october november december monday tuesday wednesday thursday friday saturday
    sunday christmas xmas easter
"""
_SEASONS: Final = frozenset(_SEASON_WORDS.split())
_WORD_YEAR_MAX_LETTERS: Final = 10
_YEAR: Final = re.compile(r"(?<!\d)(?:(?:19|20)\d\d|\d\d)(?!\d)")
_SEPARATORS: Final = " -_.,:;/\\|+*&^%#@$!~'\"`=?<>()[]{}"
_REPEATS: Final = re.compile(r"(.)\1+")
_LEET_COMMON: Final = {
    "@": "a",
    "0": "o",
    "3": "e",
    "4": "a",
    "5": "s",
    "$": "s",
    "7": "t",
    "!": "i",
}
#: Leetspeak undone, ``1`` read as ``i`` and as ``l``.
_UNLEET: Final = (
    str.maketrans({**_LEET_COMMON, "1": "i"}),
    str.maketrans({**_LEET_COMMON, "1": "l"}),
)
#: The unshifted US keyboard rows (staggered: key ``c`` of a row sits between keys ``c`` and
#: ``c + 1`` of the row above) and the numeric keypad.
_KEYBOARD_ROWS: Final = ("1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./")
_KEYPAD_ROWS: Final = ("789", "456", "123", "0")
_UNSHIFT: Final = str.maketrans('~!@#$%^&*()_+{}|:"<>?', "`1234567890-=[]\\;',./")


def password_problems(password: str, *, username: str | None = None) -> list[str]:
    """Why ``password`` is refused, one short sentence each (empty: it is acceptable).

    The rules: at least 12 characters (at most 1024) with a lower-case and an upper-case letter,
    a digit and a special character (the MedDream manual); not the user name, not part of it and
    not containing it; not a common or breached password (``data/common_passwords.txt``) once
    the usual mangling is undone (case, digits and special characters before or after it,
    leetspeak such as ``P@ssw0rd``, doubled letters, the word twice); not a keyboard walk or
    sequence (``qwerty``, ``1qaz2wsx``, ``123456``); not a short pattern repeated; not a season,
    month or day, nor a word of up to 10 letters, next to a year (``Summer2024!!``).

    The check is offline; the list is read once, on first use.
    """
    problems = _composition_problems(password)
    if len(password) > _MAX_LENGTH:
        return problems  # too long to look at further; the length is the problem
    lowered = password.lower()
    problems += _name_problems(lowered, username)
    if _is_common(lowered):
        problems.append("It is a common or breached password, even with the changes made to it.")
    if _is_repeated_pattern(lowered):
        problems.append("It repeats a short pattern or uses too few different characters.")
    elif _is_keyboard_walk(lowered):
        problems.append("It is mostly a keyboard walk or a sequence (like qwerty or 123456).")
    word_year = _word_and_year(lowered)
    if word_year is not None:
        problems.append(
            f"It is a {'season or date' if word_year in _SEASONS else 'word'} next to a year."
        )
    return problems


def _composition_problems(password: str) -> list[str]:
    problems = []
    if len(password) < PASSWORD_MIN_LENGTH:
        problems.append(f"It is shorter than {PASSWORD_MIN_LENGTH} characters.")
    elif len(password) > _MAX_LENGTH:
        problems.append(f"It is longer than {_MAX_LENGTH} characters.")
    classes = (
        (str.islower, "lower-case letter"),
        (str.isupper, "upper-case letter"),
        (str.isdigit, "digit"),
        (lambda c: not c.isalnum(), "special character (like # or !)"),
    )
    for test, what in classes:
        if not any(test(c) for c in password):
            problems.append(f"It has no {what}.")
    return problems


def _name_problems(lowered: str, username: str | None) -> list[str]:
    problems = []
    readings = (lowered, *(lowered.translate(table) for table in _UNLEET))
    name = (username or "").strip().lower()
    if name and lowered in name:
        problems.append("It is the user name or a part of the user name.")
    elif len(name) >= 3 and any(name in reading for reading in readings):
        problems.append("It contains the user name.")
    for word in _CONTEXT_WORDS:
        if any(word in reading for reading in readings):
            problems.append(f"It contains the name of the program ({word}).")
    return problems


@functools.cache
def _common_passwords() -> frozenset[str]:
    """The list (read once, on first use: about 10 ms)."""
    source = importlib.resources.files(__package__ or "sendtopacs_core")
    text = source.joinpath("data", "common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line for line in text.split("\n") if line and not line.startswith("#"))


def _is_filler(char: str) -> bool:
    """Digits and special characters, the usual padding around a weak base word."""
    return not char.isalpha()


def _bases(lowered: str) -> Iterator[tuple[str, bool]]:
    """Readings of ``lowered`` without leading and trailing padding, leetspeak undone.

    Every cut of the padding is tried (``mercede1`` is on the list, so ``Mercede11!11`` must
    keep one digit); the flag marks the readings with all padding cut, or none.
    """
    size = len(lowered)
    lead = 0
    while lead < min(size, _MAX_FILLER) and _is_filler(lowered[lead]):
        lead += 1
    trail = 0
    while trail < min(size, _MAX_FILLER) and _is_filler(lowered[size - 1 - trail]):
        trail += 1
    for start in range(lead + 1):
        for end in range(size - trail, size + 1):
            if end - start < 3:
                continue
            base = lowered[start:end]
            whole = (start, end) in ((lead, size - trail), (0, size))
            yield base, whole
            for table in _UNLEET:
                yield base.translate(table), whole


def _unstretched(base: str) -> Iterator[str]:
    """``base`` with each run of a repeated character (the first 4) cut to 1 or 2 of it."""
    runs = [match.span() for match in _REPEATS.finditer(base)][:4]
    if not runs:
        return
    for choice in itertools.product((1, 2), repeat=len(runs)):
        parts, position = [], 0
        for (start, end), keep in zip(runs, choice, strict=True):
            parts.append(base[position : start + min(keep, end - start)])
            position = end
        parts.append(base[position:])
        yield "".join(parts)


def _is_common(lowered: str) -> bool:
    entries = _common_passwords()
    for base, whole in _bases(lowered):
        if base in entries:
            return True
        half = len(base) // 2
        if len(base) % 2 == 0 and base[:half] == base[half:] and base[:half] in entries:
            return True  # the word twice
        if whole and any(reading in entries for reading in _unstretched(base)):
            return True
    return False


def _is_repeated_pattern(lowered: str) -> bool:
    """The same short piece over and over (``abcabcabc``), or very few different characters."""
    if len(set(lowered)) <= 4:
        return True
    return any(lowered[period:] == lowered[:-period] for period in range(1, len(lowered) // 2 + 1))


@functools.cache
def _neighbours() -> dict[str, frozenset[str]]:
    """The keys next to each key, on the keyboard and on the numeric keypad."""
    near: dict[str, set[str]] = {}

    def link(a: str, b: str) -> None:
        near.setdefault(a, set()).add(b)
        near.setdefault(b, set()).add(a)

    rows = _KEYBOARD_ROWS
    for r, row in enumerate(rows):
        for c, key in enumerate(row):
            if c + 1 < len(row):
                link(key, row[c + 1])
            if r + 1 < len(rows):
                below = rows[r + 1]
                for col in (c - 1, c):
                    if 0 <= col < len(below):
                        link(key, below[col])
    pad = _KEYPAD_ROWS
    for r, row in enumerate(pad):
        for c, key in enumerate(row):
            for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):
                if 0 <= r + dr < len(pad) and 0 <= c + dc < len(pad[r + dr]):
                    link(key, pad[r + dr][c + dc])
    return {key: frozenset(keys) for key, keys in near.items()}


def _is_keyboard_walk(lowered: str) -> bool:
    """Whether ``lowered`` is a few runs of neighbouring keys, sequences or repeats.

    Random characters break the run almost every time (about 15 % of pairs are neighbours);
    a walk such as ``qwerty123456!`` is three runs.
    """
    keys = lowered.translate(_UNSHIFT)
    near = _neighbours()
    runs = 1
    for a, b in itertools.pairwise(keys):
        sequence = abs(ord(a) - ord(b)) == 1 and a.isalnum() and b.isalnum()
        linked = a == b or sequence or b in near.get(a, frozenset())
        if not linked:
            runs += 1
    return runs <= max(2, len(keys) // 4)


def _word_and_year(lowered: str) -> str | None:
    """The word of a "word next to a year" password (``Summer2024!!``, ``2024@Welcome``)."""
    for match in _YEAR.finditer(lowered):
        before, after = lowered[: match.start()], lowered[match.end() :]
        if all(map(_is_filler, after)):
            word = before.rstrip(_SEPARATORS)
        elif all(map(_is_filler, before)):
            word = after.lstrip(_SEPARATORS)
        else:
            continue
        for candidate in (_strip_filler(word), word):
            for table in _UNLEET:
                reading = candidate.translate(table)
                if (
                    reading.isascii()
                    and reading.isalpha()
                    and (reading in _SEASONS or len(reading) <= _WORD_YEAR_MAX_LETTERS)
                ):
                    return reading
    return None


def _strip_filler(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _is_filler(text[start]):
        start += 1
    while end > start and _is_filler(text[end - 1]):
        end -= 1
    return text[start:end]
