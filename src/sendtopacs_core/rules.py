"""Choose what a NON-DICOM file becomes: its kind of content and the SOP class written."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import attrs
from pydicom.uid import (
    UID,
    EncapsulatedPDFStorage,
    SecondaryCaptureImageStorage,
    VideoEndoscopicImageStorage,
    VideoMicroscopicImageStorage,
    VideoPhotographicImageStorage,
)

from sendtopacs_core.media.kind import MediaKind
from sendtopacs_core.model import SopClassRule

__all__ = ["VIDEO_MODALITY", "IodChoice", "choose_iod"]

#: The SOP class whose content a kind of still media is always built as.
CONTENT_SOP_CLASS: Final = {
    MediaKind.IMAGE: str(SecondaryCaptureImageStorage),
    MediaKind.PDF: str(EncapsulatedPDFStorage),
}
_CONTENT_NAME: Final = {
    MediaKind.IMAGE: "Secondary Capture Image Storage",
    MediaKind.PDF: "Encapsulated PDF Storage",
    MediaKind.VIDEO: "Video Photographic Image Storage",
}
#: The video SOP classes and the Modality each requires (PS3.3 A.32.5-7).
VIDEO_MODALITY: Final = {
    str(VideoEndoscopicImageStorage): "ES",
    str(VideoMicroscopicImageStorage): "GM",
    str(VideoPhotographicImageStorage): "XC",
}
_VIDEO_BY_MODALITY: Final = {modality: uid for uid, modality in VIDEO_MODALITY.items()}


@attrs.frozen(kw_only=True)
class IodChoice:
    """The outcome of the rules for one file.

    ``modality`` is set when the SOP class dictates the Modality (the video classes); otherwise
    the study's or the default modality is written.
    """

    kind: MediaKind
    rule: SopClassRule
    sop_class_uid: str
    modality: str | None = None
    warning: str | None = None


def choose_iod(path: Path, kind: MediaKind, rule: SopClassRule, modality: str) -> IodChoice:
    """The SOP class for content of ``kind`` under ``rule``, for objects of ``modality``.

    A rule naming another SOP class than the content's is honoured (the UID is written), with
    a warning that the content stays what it is, as the tool we replace does. For video, a
    rule that follows the modality (the default video rule), or the default rule for all
    files, picks Video Endoscopic for ``ES``, Video Microscopic for ``GM`` and Video
    Photographic (Modality ``XC``) for anything else; a rule naming a video class writes the
    Modality that class requires.
    """
    if kind is MediaKind.VIDEO:
        return _choose_video(path, rule, modality)
    content = CONTENT_SOP_CLASS[kind]
    warning = None
    if rule.uid != content:
        warning = (
            f"SOP Class UID {rule.uid} of rule '{rule.name}' is written for {path.name}, "
            f"but its content stays {_CONTENT_NAME[kind]}"
        )
    return IodChoice(kind=kind, rule=rule, sop_class_uid=rule.uid, warning=warning)


def _choose_video(path: Path, rule: SopClassRule, modality: str) -> IodChoice:
    if rule.follow_modality or (rule.default and rule.uid not in VIDEO_MODALITY):
        uid = _VIDEO_BY_MODALITY.get(modality, str(VideoPhotographicImageStorage))
    elif rule.uid in VIDEO_MODALITY:
        uid = rule.uid
    else:
        custom = (
            f"SOP Class UID {rule.uid} of rule '{rule.name}' is written for {path.name}, "
            "but its content stays Video Photographic Image Storage"
        )
        return IodChoice(
            kind=MediaKind.VIDEO, rule=rule, sop_class_uid=rule.uid, modality="XC", warning=custom
        )
    required = VIDEO_MODALITY[uid]
    warning: str | None = None
    if required != modality:
        warning = (
            f"Modality {required} is written for {path.name} instead of {modality}: "
            f"{UID(uid).name} requires it"
        )
    return IodChoice(
        kind=MediaKind.VIDEO, rule=rule, sop_class_uid=uid, modality=required, warning=warning
    )
