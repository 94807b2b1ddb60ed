"""Choose what a NON-DICOM file becomes: its kind of content and the SOP class written."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import attrs
from pydicom.uid import EncapsulatedPDFStorage, SecondaryCaptureImageStorage

from sendtopacs_core.media.kind import MediaKind
from sendtopacs_core.model import SopClassRule

__all__ = ["IodChoice", "choose_iod"]

#: The SOP class whose content a kind of media is always built as.
CONTENT_SOP_CLASS: Final = {
    MediaKind.IMAGE: str(SecondaryCaptureImageStorage),
    MediaKind.PDF: str(EncapsulatedPDFStorage),
}
_CONTENT_NAME: Final = {
    MediaKind.IMAGE: "Secondary Capture Image Storage",
    MediaKind.PDF: "Encapsulated PDF Storage",
}


@attrs.frozen(kw_only=True)
class IodChoice:
    """The outcome of the rules for one file."""

    kind: MediaKind
    rule: SopClassRule
    sop_class_uid: str
    warning: str | None


def choose_iod(path: Path, kind: MediaKind, rule: SopClassRule) -> IodChoice:
    """The SOP class for content of ``kind`` under ``rule``.

    A rule naming another SOP class than the content's is honoured (the UID is written), with
    a warning that the content stays what it is, as the tool we replace does.
    """
    content = CONTENT_SOP_CLASS[kind]
    warning = None
    if rule.uid != content:
        warning = (
            f"SOP Class UID {rule.uid} of rule '{rule.name}' is written for {path.name}, "
            f"but its content stays {_CONTENT_NAME[kind]}"
        )
    return IodChoice(kind=kind, rule=rule, sop_class_uid=rule.uid, warning=warning)
