"""UIDs: the implementation identity and deterministic instance UIDs.

Every UID sendtopacs creates is ``2.25.<decimal UUID>`` (PS3.5 B.2) where the UUID is a version 5
UUID of a fixed namespace and the parts that identify the object. The same parts always give the
same UID; :mod:`sendtopacs_core.identity` says which parts identify a study, a series and an
object (every value written into it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Final

from sendtopacs_core._version import __version__
from sendtopacs_core._vr import check_sh, check_ui

__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "RECIPE_VERSION",
    "derive_uid",
]

_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:sendtopacs:uids")

#: Bumped whenever a conversion would produce different content for the same inputs, so that
#: regenerated objects get new SOP Instance UIDs.
RECIPE_VERSION: Final = "2"


def derive_uid(kind: str, parts: Iterable[str]) -> str:
    """Return the UID of ``kind`` (``study``, ``series``, ``instance``...) identified by ``parts``.

    Examples
    --------
    >>> derive_uid("study", ["PAT1", "ACC1"]) == derive_uid("study", ["PAT1", "ACC1"])
    True
    >>> derive_uid("study", ["PAT1", "ACC1"]).startswith("2.25.")
    True
    """
    text = "\x1f".join([kind, *parts])
    return f"2.25.{uuid.uuid5(_NAMESPACE, text).int}"


IMPLEMENTATION_CLASS_UID: Final = check_ui(derive_uid("implementation", ["sendtopacs", "1"]))


def _version_name(version: str) -> str:
    release = version.split("+", maxsplit=1)[0].split(".dev", maxsplit=1)[0]
    name = "SENDTOPACS_" + "_".join(release.split(".")[:2])
    return check_sh(name[:16])


IMPLEMENTATION_VERSION_NAME: Final = _version_name(__version__)
