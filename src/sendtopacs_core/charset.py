"""Specific Character Set (0008,0005): choose the least set that holds the text, check it.

PS3.3 C.12.1.1.2 and PS3.5 §6.1. With the setting ``auto`` a dataset whose text is ASCII gets no
Specific Character Set, Latin-1 text gets ``ISO_IR 100`` and anything else ``ISO_IR 192``
(UTF-8). A configured set is used as given; text it cannot hold is an error, never replaced.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Final

from pydicom.charset import convert_encodings, encode_string
from pydicom.dataset import Dataset

from sendtopacs_core._vr import check_charset
from sendtopacs_core.errors import InvalidValueError

__all__ = ["AUTO", "apply_charset", "charset_terms"]

AUTO: Final = "auto"

#: VRs whose values are affected by Specific Character Set (PS3.5 §6.1.2.3).
_TEXT_VRS: Final = frozenset({"SH", "LO", "ST", "LT", "PN", "UC", "UT"})
#: Multi-byte ISO 2022 sets cannot be the first value: G0 must be ASCII (or JIS X 0201).
_MULTIBYTE_2022: Final = frozenset(
    {"ISO 2022 IR 87", "ISO 2022 IR 159", "ISO 2022 IR 149", "ISO 2022 IR 58"}
)


def charset_terms(configured: str) -> list[str]:
    """The values of Specific Character Set for a configured (non-``auto``) character set.

    Examples
    --------
    >>> charset_terms("ISO 2022 IR 87")
    ['ISO 2022 IR 6', 'ISO 2022 IR 87']
    >>> charset_terms("ISO_IR 192")
    ['ISO_IR 192']
    """
    check_charset(configured, "character set")
    terms = configured.split("\\")
    if terms[0] in _MULTIBYTE_2022:
        terms.insert(0, "ISO 2022 IR 6")
    return [term or "ISO 2022 IR 6" for term in terms]


def _text_values(dataset: Dataset) -> Iterator[tuple[str, str]]:
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                yield from _text_values(item)
        elif element.VR in _TEXT_VRS and element.value is not None:
            values = element.value if element.VM > 1 else [element.value]
            for value in values:
                text = str(value)
                if text:
                    yield element.keyword or str(element.tag), text


def _auto_terms(texts: list[str]) -> list[str] | None:
    if all(text.isascii() for text in texts):
        return None
    try:
        for text in texts:
            text.encode("latin-1")
    except UnicodeEncodeError:
        return ["ISO_IR 192"]
    return ["ISO_IR 100"]


def _can_encode(text: str, encodings: list[str]) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            encode_string(text, encodings)
        except (UnicodeError, UserWarning, ValueError, LookupError):
            return False
    return True


def apply_charset(dataset: Dataset, configured: str = AUTO) -> list[str] | None:
    """Set (or remove) Specific Character Set to fit the dataset's text; return the terms.

    Raises
    ------
    InvalidValueError
        A value contains characters the configured character set cannot hold.
    """
    found = list(_text_values(dataset))
    if configured == AUTO:
        terms = _auto_terms([text for _, text in found])
    else:
        terms = charset_terms(configured)
        if all(text.isascii() for _, text in found) and terms == ["ISO_IR 6"]:
            terms = None
    if terms is None:
        if "SpecificCharacterSet" in dataset:
            del dataset.SpecificCharacterSet
        return None
    encodings = convert_encodings(terms)
    for keyword, text in found:
        if not _can_encode(text, encodings):
            bad = next((char for char in text if not _can_encode(char, encodings)), text[:1])
            written = "\\".join(terms)
            raise InvalidValueError(
                keyword,
                bad,
                f"the character set {written} cannot hold this character; "
                "choose a character set that can (e.g. ISO_IR 192) or change the text",
            )
    dataset.SpecificCharacterSet = terms if len(terms) > 1 else terms[0]
    return terms
