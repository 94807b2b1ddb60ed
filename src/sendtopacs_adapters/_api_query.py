"""Query keys of the HTTP API checked against their DICOM value representation.

A value pydicom finds invalid for the key's VR would otherwise reach the query with only a
pydicom warning, and that warning (logged) repeats the value, which may be patient data.
"""

from __future__ import annotations

from pydantic import AfterValidator
from pydicom import config as pydicom_config
from pydicom.valuerep import validate_value

__all__ = ["query_key"]


def query_key(vr: str) -> AfterValidator:
    """A query key that is a valid value of ``vr`` (a 400 otherwise, not a pydicom warning).

    ``\\``-separated values (list matching) are checked one by one, a date may be a range
    (``A-B``, ``A-``, ``-B``); wildcards are fine where pydicom accepts them (text, names), not
    in code strings, UIDs or dates. The message never repeats the value (patient data).
    """

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        parts = value.split("\\")
        if vr == "DA":
            parts = [part for item in parts for part in item.split("-", 1)]
        for part in parts:
            try:
                validate_value(vr, part, pydicom_config.RAISE)
            except ValueError:
                raise ValueError(f"not a valid DICOM {vr} value") from None
        return value

    return AfterValidator(check)
