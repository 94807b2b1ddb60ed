"""The API password: scrypt hashing and the policy of S9 (reliability.md section 4.3)."""

from __future__ import annotations

import importlib.resources
import inspect
import random
import string
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendtopacs_core import hash_password, password_problems, verify_password
from sendtopacs_core import passwords as module

WEAK = (
    "P@ssw0rd1234",
    "Password123!",
    "Qwerty123456!",
    "Welcome@2024",
    "Summer2024!!",
    "Admin@123456",
)
STRONG = ("k7#Vq9!mZ2@pLx", "Tr4v!s-Quoll-93x", "Correct-Horse-Battery-9")
SPECIALS = "!@#$%^&*()-_=+[]{};:,.<>/?~|"
ALPHABET = string.ascii_letters + string.digits + SPECIALS
COMPOSITION = ("shorter than", "It has no")


def _common_list() -> list[str]:
    text = (
        importlib.resources.files("sendtopacs_core")
        .joinpath("data", "common_passwords.txt")
        .read_text(encoding="utf-8")
    )
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _beyond_composition(problems: list[str]) -> list[str]:
    return [p for p in problems if not p.startswith(("It is shorter", "It has no"))]


# -- hashing --------------------------------------------------------------------------------


def test_hash_round_trip() -> None:
    stored = hash_password("k7#Vq9!mZ2@pLx")
    assert stored.startswith("scrypt$")
    assert "k7#Vq9!mZ2@pLx" not in stored
    assert verify_password("k7#Vq9!mZ2@pLx", stored)
    assert not verify_password("k7#Vq9!mZ2@pLX", stored)
    assert not verify_password("", stored)


def test_hash_is_salted() -> None:
    first, second = hash_password("same password"), hash_password("same password")
    assert first != second
    assert first.split("$")[4] != second.split("$")[4]
    assert verify_password("same password", first)
    assert verify_password("same password", second)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "scrypt",
        "plain text",
        "bcrypt$16384$8$1$00$00",
        "scrypt$16384$8$1$zz$00",
        "scrypt$16384$8$1$00$zz",
        "scrypt$x$8$1$00$00",
        "scrypt$16384$8$1$00",
        "scrypt$16384$8$1$00$00$00",
        "scrypt$3$8$1$00$00",  # n not a power of two
        "scrypt$0$8$1$00$00",
        "scrypt$-16384$8$1$00$00",
        "scrypt$1099511627776$8$1$00$00",  # would need far too much memory
        "scrypt$16384$0$1$00$00",
        "scrypt$16384$8$0$00$00",
        "scrypt$16384$8$1$00$",
        "scrypt$16384$8$1$$",
        "scrypt$16384$8$1$0011\u00e9$00",
    ],
)
def test_malformed_hash_never_verifies_and_never_raises(stored: str) -> None:
    assert verify_password("whatever", stored) is False
    assert verify_password("", stored) is False


def test_compare_is_constant_time() -> None:
    source = inspect.getsource(module.verify_password)
    assert "hmac.compare_digest" in source
    assert "==" not in source.replace("!=", "")


# -- policy ---------------------------------------------------------------------------------


@pytest.mark.parametrize("password", WEAK)
def test_s9_weak_set_refused_with_reasons(password: str) -> None:
    problems = password_problems(password)
    assert problems
    assert _beyond_composition(problems), problems  # they pass composition; refused for more
    assert all(p.endswith(".") and p[0].isupper() for p in problems)


@pytest.mark.parametrize("password", STRONG)
def test_strong_examples_accepted(password: str) -> None:
    assert password_problems(password) == []
    assert password_problems(password, username="alice") == []


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("Aa1!", "shorter than 12"),
        ("k7#vq9!mz2@plx", "no upper-case"),
        ("K7#VQ9!MZ2@PLX", "no lower-case"),
        ("kZ#Vq!!mZ@pLx", "no digit"),
        ("k7XVq9zmZ2ApLx", "no special"),
        ("Qwerty123456!", "keyboard walk"),
        ("1Qaz2wsx3edc$4rfv", "keyboard walk"),
        ("Zxcvbnm,./Asdf1", "keyboard walk"),
        ("Ab1!Ab1!Ab1!", "repeats a short pattern"),
        ("Summer2024!!", "season or date next to a year"),
        ("!!December#1999", "season or date next to a year"),
        ("2024@Welcome", "next to a year"),
        ("Marmalade84!!", "word next to a year"),
        ("Passsword1234!", "common or breached"),
        ("DragonDragon1!", "common or breached"),
        ("Mercede11!11", "common or breached"),
        ("1L0v3y0u!!2000", "common or breached"),
        ("!!L3tm31n!!2024", "common or breached"),
        ("Xq7!Sendtopacs", "name of the program"),
    ],
)
def test_each_rule_gives_its_reason(password: str, fragment: str) -> None:
    problems = password_problems(password)
    assert any(fragment in p for p in problems), problems


def test_user_name_refused() -> None:
    assert any("user name" in p for p in password_problems("Zq7!alice#Vp9", username="Alice"))
    assert any("user name" in p for p in password_problems("Zq7!@l1ce#Vp9", username="alice"))
    assert any(
        "part of the user name" in p
        for p in password_problems("Zq7!Vp9#Mk2@", username="xx-Zq7!Vp9#Mk2@-xx")
    )
    assert password_problems("Zq7!Vp9#Mk2@Lw", username="al") == []  # too short to matter


def test_common_list_shipped() -> None:
    entries = _common_list()
    assert len(entries) >= 10_000
    assert {"password", "qwerty", "123456", "iloveyou", "p@ssw0rd"} <= set(entries)
    assert all(e == e.lower() and e == e.strip() for e in entries)


def _mangle(entry: str, pad: str) -> str:
    """Capitalise, add ``1!``, pad to 12: the composition-passing form of a list entry."""
    first = next((i for i, c in enumerate(entry) if c.isalpha()), None)
    if first is not None:
        entry = entry[:first] + entry[first].upper() + entry[first + 1 :]
    entry += "1!"
    while len(entry) < 12:
        entry += pad
    return entry


@pytest.mark.parametrize("pad", ["1", "!", "0", "#", "9"])
def test_mangled_top_list_refused(pad: str) -> None:
    rng = random.Random(20240917)  # noqa: S311 (seeded: a reproducible sample)
    sample = rng.sample(_common_list(), 200)
    accepted = [m for m in (_mangle(e, pad) for e in sample) if not password_problems(m)]
    assert accepted == []
    # Those that meet the composition rules are refused for being weak, not for composition.
    composed = [_mangle(e, pad) for e in sample]
    for mangled in composed:
        problems = password_problems(mangled)
        if not any(p.startswith(COMPOSITION) for p in problems):
            assert _beyond_composition(problems), mangled


def _random_strong(rng: random.Random) -> str:
    """16 characters, each class present, the rest uniform over the 90."""
    chars = [
        rng.choice(string.ascii_lowercase),
        rng.choice(string.ascii_uppercase),
        rng.choice(string.digits),
        rng.choice(SPECIALS),
        *(rng.choice(ALPHABET) for _ in range(12)),
    ]
    rng.shuffle(chars)
    return "".join(chars)


def test_alphabet_has_90_characters() -> None:
    assert len(ALPHABET) == 90
    assert len(set(ALPHABET)) == 90


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=2**64))
def test_random_strong_strings_mostly_accepted(seed: int) -> None:
    # Hypothesis picks the seeds (its own byte choices shrink towards "aaaa...", rightly refused).
    rng = random.Random(seed)  # noqa: S311 (seeded: reproducible)
    passwords = [_random_strong(rng) for _ in range(50)]
    refused = [(p, password_problems(p)) for p in passwords if password_problems(p)]
    assert len(refused) <= 2, refused


def test_random_strong_acceptance_rate() -> None:
    rng = random.Random(7)  # noqa: S311 (seeded: reproducible)
    samples = ["".join(rng.choice(ALPHABET) for _ in range(16)) for _ in range(5000)]
    composed = [
        s for s in samples if not any(p.startswith(COMPOSITION) for p in password_problems(s))
    ]
    refused = [s for s in composed if password_problems(s)]
    assert len(refused) / len(composed) < 0.005, refused[:20]


def test_check_is_fast_including_first_load() -> None:
    module._common_passwords.cache_clear()
    start = time.perf_counter()
    password_problems("k7#Vq9!mZ2@pLx", username="sendtopacs")
    assert time.perf_counter() - start < 0.050  # the first call reads the list
    rng = random.Random(3)  # noqa: S311 (seeded: reproducible)
    sample = [
        *WEAK,
        *STRONG,
        *("".join(rng.choice(ALPHABET) for _ in range(64)) for _ in range(50)),
    ]
    for password in sample:
        start = time.perf_counter()
        password_problems(password, username="admin")
        assert time.perf_counter() - start < 0.050, password


def test_long_and_odd_inputs_do_not_break() -> None:
    assert any("longer than" in p for p in password_problems("aB3$" * 1000))
    assert password_problems("") != []
    assert password_problems("\udc80" * 20) != []  # lone surrogates: refused, no exception
    hashed = hash_password("\udc80Zq7!Vp9#Mk2@")
    assert verify_password("\udc80Zq7!Vp9#Mk2@", hashed)
