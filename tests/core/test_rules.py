"""SOP class choice by the extension rules, for images, PDFs and videos."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import (
    EncapsulatedPDFStorage,
    SecondaryCaptureImageStorage,
    VideoEndoscopicImageStorage,
    VideoMicroscopicImageStorage,
    VideoPhotographicImageStorage,
)

from sendtopacs_core import NonDicomSettings, SopClassRule
from sendtopacs_core.media.kind import MediaKind
from sendtopacs_core.rules import choose_iod

DEFAULTS = NonDicomSettings()


@pytest.mark.parametrize(
    ("modality", "uid", "written"),
    [
        ("ES", VideoEndoscopicImageStorage, "ES"),
        ("GM", VideoMicroscopicImageStorage, "GM"),
        ("XC", VideoPhotographicImageStorage, "XC"),
        ("OT", VideoPhotographicImageStorage, "XC"),
        ("US", VideoPhotographicImageStorage, "XC"),
    ],
)
def test_default_video_rule_follows_the_modality(modality: str, uid: str, written: str) -> None:
    choice = choose_iod(Path("clip.mp4"), MediaKind.VIDEO, DEFAULTS.rule_for("mp4"), modality)
    assert choice.sop_class_uid == uid
    assert choice.modality == written
    if written != modality:
        assert choice.warning is not None
        assert f"Modality {written} is written" in choice.warning
    else:
        assert choice.warning is None


def test_a_video_with_an_unlisted_extension_follows_the_modality() -> None:
    rule = DEFAULTS.rule_for("xyz")
    assert rule.uid == SecondaryCaptureImageStorage
    choice = choose_iod(Path("clip.xyz"), MediaKind.VIDEO, rule, "ES")
    assert choice.sop_class_uid == VideoEndoscopicImageStorage


def test_an_explicit_video_rule_dictates_the_modality() -> None:
    rule = SopClassRule(name="Endo", uid=str(VideoEndoscopicImageStorage), extensions=("mp4",))
    choice = choose_iod(Path("clip.mp4"), MediaKind.VIDEO, rule, "OT")
    assert (choice.sop_class_uid, choice.modality) == (VideoEndoscopicImageStorage, "ES")
    assert choice.warning is not None


def test_custom_uids_warn_that_the_content_stays() -> None:
    custom = SopClassRule(name="Custom", uid="1.2.3.4", extensions=("*",), default=True)
    image = choose_iod(Path("a.png"), MediaKind.IMAGE, custom, "OT")
    assert image.sop_class_uid == "1.2.3.4"
    assert image.warning is not None
    assert "stays Secondary Capture" in image.warning
    pdf = choose_iod(Path("a.pdf"), MediaKind.PDF, DEFAULTS.rule_for("pdf"), "OT")
    assert (pdf.sop_class_uid, pdf.warning) == (EncapsulatedPDFStorage, None)
    named = SopClassRule(name="Custom video", uid="1.2.3.5", extensions=("mp4",))
    video = choose_iod(Path("a.mp4"), MediaKind.VIDEO, named, "OT")
    assert video.sop_class_uid == "1.2.3.5"
    assert video.warning is not None
    assert "stays Video Photographic" in video.warning
