"""Videos through the Converter: pass-through, remux and transcode, validated by dciodvfy."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import av
import pydicom
import pytest
from pydicom.encaps import generate_frames
from pydicom.uid import (
    VideoEndoscopicImageStorage,
    VideoMicroscopicImageStorage,
    VideoPhotographicImageStorage,
)

from sendtopacs_core import (
    ConversionAction,
    Converter,
    CorruptMediaError,
    Settings,
    Study,
    UnsupportedMediaError,
    VideoFormat,
)
from tests._clips import X264_HIGH_41, Clips, make_clips, write_clip

NOW = dt.datetime(2026, 11, 27, 10, 30, 0, tzinfo=dt.UTC)
STUDY = Study(patient_id="PID-0001", patient_name="Test^Patient", accession_number="ACC7")


def converter(settings: Settings | None = None) -> Converter:
    return Converter(settings, clock=lambda: NOW)


def with_non_dicom(**changes: Any) -> Settings:
    base = Settings()
    return attrs.evolve(base, non_dicom=attrs.evolve(base.non_dicom, **changes))


def stored_stream(path: Path) -> bytes:
    ds = pydicom.dcmread(path)
    (fragment,) = generate_frames(ds.PixelData, number_of_frames=1)
    return bytes(fragment)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "high": write_clip(folder / "high.mp4", width=640, height=360, options=X264_HIGH_41),
        "baseline": write_clip(folder / "baseline.mp4", options={"preset": "ultrafast"}),
        "ts": write_clip(folder / "stream.ts", options=X264_HIGH_41, fmt="mpegts"),
    }


def test_conforming_h264_passes_through_byte_identical(
    clips: dict[str, Path],
    tmp_path: Path,
    dciodvfy: Callable[[Path], Any],
    dcmdump: Callable[[Path], str],
) -> None:
    (item,) = converter().convert([clips["high"]], STUDY, out_dir=tmp_path)
    assert item.action is ConversionAction.PASSED_THROUGH
    assert item.transfer_syntax_uid == "1.2.840.10008.1.2.4.102"
    assert item.sop_class_uid == VideoPhotographicImageStorage
    assert any("Modality XC" in w for w in item.warnings)  # default modality OT
    assert dciodvfy(item.path).errors == []
    assert "PixelSequence" in dcmdump(item.path)
    stored = stored_stream(item.path)
    source = clips["high"].read_bytes()
    assert stored[: len(source)] == source
    ds = pydicom.dcmread(item.path)
    assert (ds.Rows, ds.Columns, int(ds.NumberOfFrames)) == (360, 640, 30)
    assert ds.Modality == "XC"
    with av.open(io.BytesIO(stored), "r") as container:
        assert len(list(container.decode(video=0))) == 30


@pytest.mark.parametrize(
    ("modality", "uid"),
    [("ES", VideoEndoscopicImageStorage), ("GM", VideoMicroscopicImageStorage)],
)
def test_sop_class_follows_the_modality(
    clips: dict[str, Path],
    tmp_path: Path,
    dciodvfy: Callable[[Path], Any],
    modality: str,
    uid: str,
) -> None:
    study = attrs.evolve(STUDY, modality=modality)
    (item,) = converter().convert([clips["high"]], study, out_dir=tmp_path)
    assert item.sop_class_uid == uid
    assert pydicom.dcmread(item.path).Modality == modality
    assert dciodvfy(item.path).errors == []


def test_baseline_profile_is_transcoded_with_progress(
    clips: dict[str, Path], tmp_path: Path, dciodvfy: Callable[[Path], Any]
) -> None:
    seen: list[float] = []
    (item,) = converter().convert(
        [clips["baseline"]],
        STUDY,
        out_dir=tmp_path,
        progress=lambda source, fraction: seen.append(fraction),
    )
    assert item.action is ConversionAction.TRANSCODED
    assert "Baseline" in item.reason
    assert item.transfer_syntax_uid == "1.2.840.10008.1.2.4.102"
    assert dciodvfy(item.path).errors == []
    assert seen
    assert seen == sorted(seen)
    assert seen[-1] == pytest.approx(1.0)
    with av.open(io.BytesIO(stored_stream(item.path)), "r") as container:
        video = container.streams.video[0]
        assert video.codec_context.profile == "High"
        assert video.codec_context.pix_fmt == "yuv420p"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline.dcm"]


def test_h264_in_mpeg_ts_is_remuxed_to_mp4(
    clips: dict[str, Path], tmp_path: Path, dciodvfy: Callable[[Path], Any]
) -> None:
    (item,) = converter().convert([clips["ts"]], STUDY, out_dir=tmp_path)
    assert item.action is ConversionAction.REMUXED
    assert dciodvfy(item.path).errors == []
    with av.open(io.BytesIO(stored_stream(item.path)), "r") as container:
        assert container.format.name.startswith("mov")
        assert len([p for p in container.demux(video=0) if p.size]) == 30


def test_named_video_format_mpeg2_main(
    clips: dict[str, Path], tmp_path: Path, dciodvfy: Callable[[Path], Any]
) -> None:
    settings = with_non_dicom(video_format=VideoFormat.MPEG2_MAIN)
    (item,) = converter(settings).convert([clips["high"]], STUDY, out_dir=tmp_path)
    assert item.action is ConversionAction.TRANSCODED
    assert item.transfer_syntax_uid == "1.2.840.10008.1.2.4.100"
    assert dciodvfy(item.path).errors == []


def test_bad_videos_fail_alone(clips: dict[str, Path], tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.mp4"
    data = clips["high"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20, encoding="utf-8")
    report = converter().convert([truncated, clips["high"], text], STUDY, out_dir=tmp_path / "out")
    assert [f.source for f in report] == [clips["high"]]
    failed = {f.source: f.error for f in report.failures}
    assert set(failed) == {truncated, text}
    assert isinstance(failed[truncated], CorruptMediaError | UnsupportedMediaError)
    assert "truncated.mp4" in str(failed[truncated])
    assert "notes.mp4" in str(failed[text])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["high.dcm"]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return make_clips(tmp_path_factory.mktemp("matrix"))


MATRIX = [
    ("hd720", ConversionAction.PASSED_THROUGH),
    ("hd1080p60", ConversionAction.PASSED_THROUGH),
    ("baseline", ConversionAction.TRANSCODED),
    ("portrait", ConversionAction.PASSED_THROUGH),
    ("rotated", ConversionAction.TRANSCODED),
    ("vfr", ConversionAction.TRANSCODED),
    ("hevc", ConversionAction.TRANSCODED),
    ("vp9", ConversionAction.TRANSCODED),
    ("mjpeg", ConversionAction.TRANSCODED),
    ("mpeg2", ConversionAction.PASSED_THROUGH),
    ("h264_ts", ConversionAction.REMUXED),
    ("mono_aac", ConversionAction.REMUXED),
]


@pytest.mark.parametrize(("name", "action"), MATRIX)
def test_every_clip_gives_a_valid_playable_object(
    matrix: Clips,
    tmp_path: Path,
    dciodvfy: Callable[[Path], Any],
    name: str,
    action: ConversionAction,
) -> None:
    source: Path = getattr(matrix, name)
    report = converter().convert([source], STUDY, out_dir=tmp_path)
    assert report.failures == ()
    (item,) = report.files
    assert item.action is action, item.reason
    result = dciodvfy(item.path)
    assert result.errors == [], result.output
    ds = pydicom.dcmread(item.path)
    stored = stored_stream(item.path)
    if action is ConversionAction.PASSED_THROUGH:
        original = source.read_bytes()
        assert stored[: len(original)] == original
        assert len(stored) - len(original) in (0, 1)
    with av.open(io.BytesIO(stored), "r") as container:
        frames = list(container.decode(video=0))
    assert int(ds.NumberOfFrames) == len(frames)
    assert (ds.Rows, ds.Columns) == (frames[0].height, frames[0].width)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{source.stem}.dcm"]
