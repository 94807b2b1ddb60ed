"""Video Endoscopic / Microscopic / Photographic objects: builder and streaming writer."""

from __future__ import annotations

import datetime as dt
import errno
import io
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import attrs
import av
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments

import sendtopacs_core.iods.video as video_module
from sendtopacs_core.iods._modules import ObjectContext
from sendtopacs_core.iods.video import (
    DEFAULT_ANATOMIC_REGION,
    MAX_FRAGMENT_BYTES,
    VIDEO_ENDOSCOPIC,
    VIDEO_MICROSCOPIC,
    VIDEO_PHOTOGRAPHIC,
    VideoStream,
    build_video,
    write_video,
)
from sendtopacs_core.model import ConversionType, Study
from tests._peers import Dciodvfy, Dcmdump

H264_HIGH_41 = "1.2.840.10008.1.2.4.102"
WIDTH, HEIGHT, FPS, FRAMES = 1280, 720, 30, 60
NOW = dt.datetime(2026, 1, 2, 3, 4, 5)  # noqa: DTZ001 (the conversion's local time)

#: The 8-byte item header of an empty Basic Offset Table and the Sequence Delimitation Item.
EMPTY_BOT = b"\xfe\xff\x00\xe0\x00\x00\x00\x00"
DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s H.264 High@4.1 1280x720 30 fps MP4 (libx264 with 8x8dct for profile_idc 100)."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as output:
        stream = output.add_stream(
            "libx264",
            rate=FPS,
            options={
                "profile": "high",
                "level": "4.1",
                "preset": "ultrafast",
                "x264-params": "8x8dct=1",
            },
        )
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.time_base = Fraction(1, FPS)
        for index in range(FRAMES):
            pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
            pixels[:, :, 0] = index * 4
            pixels[100:300, index * 15 : index * 15 + 200] = 255
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    with av.open(str(path)) as check:
        assert check.streams.video[0].codec_context.profile == "High"
    return path


def video_stream(path: Path, **changes: object) -> VideoStream:
    values: dict[str, object] = {
        "path": path,
        "size_bytes": path.stat().st_size,
        "transfer_syntax_uid": H264_HIGH_41,
        "width": WIDTH,
        "height": HEIGHT,
        "frame_count": FRAMES,
        "frame_rate": Fraction(FPS),
        "codec": "h264",
        "content_datetime": None,
    }
    values.update(changes)
    return VideoStream(**values)  # type: ignore[arg-type]


def object_context(sop_class_uid: str = VIDEO_ENDOSCOPIC, modality: str = "ES") -> ObjectContext:
    return ObjectContext(
        study=Study(patient_id="P1", patient_name="Doe^Jane", study_id="S1", study_time="080000"),
        study_instance_uid="2.25.1",
        series_instance_uid="2.25.2",
        series_number=1,
        instance_number=1,
        sop_class_uid=sop_class_uid,
        sop_instance_uid="2.25.3",
        modality=modality,
        conversion_type=ConversionType.DV,
        burned_in_annotation=None,
        institution_name=None,
        station_name=None,
        source_ae_title=None,
        day=NOW.date(),
        study_date="20260102",
        timezone=NOW.tzinfo,
    )


def fragments(path: Path) -> list[bytes]:
    return list(generate_fragments(pydicom.dcmread(path).PixelData))


@pytest.mark.usefixtures("pydicom_raise")
@pytest.mark.parametrize(
    ("sop_class_uid", "modality"),
    [(VIDEO_ENDOSCOPIC, "ES"), (VIDEO_MICROSCOPIC, "GM"), (VIDEO_PHOTOGRAPHIC, "XC")],
)
def test_h264_passes_validators_and_round_trips(
    mp4: Path,
    tmp_path: Path,
    dciodvfy: Dciodvfy,
    dcmdump: Dcmdump,
    sop_class_uid: str,
    modality: str,
) -> None:
    stream = video_stream(mp4)
    dataset = build_video(stream, context=object_context(sop_class_uid, modality))
    assert "PixelData" not in dataset
    target = tmp_path / "video.dcm"
    write_video(dataset, stream, target)
    assert "PixelData" not in dataset
    assert [p.name for p in tmp_path.iterdir()] == ["video.dcm"]

    result = dciodvfy(target)
    assert result.errors == [], result.output
    assert result.warnings == [], result.output
    dump = dcmdump(target)
    assert "YBR_PARTIAL_420" in dump
    assert "PixelSequence" in dump

    read = pydicom.dcmread(target)
    assert read.file_meta.TransferSyntaxUID == H264_HIGH_41
    assert read.SOPClassUID == sop_class_uid
    assert read.Modality == modality
    assert read.NumberOfFrames == FRAMES
    assert (read.Rows, read.Columns) == (HEIGHT, WIDTH)
    assert float(read.FrameTime) == pytest.approx(1000 / FPS, abs=1e-4)
    assert read.FrameIncrementPointer == 0x00181063
    assert read.ImageType == ["ORIGINAL", "PRIMARY"]
    assert read.LossyImageCompression == "01"
    assert read.LossyImageCompressionMethod == "ISO_14496_10"
    assert len(read.AnatomicRegionSequence) == 1
    assert read.AnatomicRegionSequence[0].CodeValue == DEFAULT_ANATOMIC_REGION[0]
    assert "Laterality" not in read
    assert "PixelAspectRatio" not in read
    assert len(read.AcquisitionContextSequence) == 0

    source = mp4.read_bytes()
    bot, fragment = fragments(target)
    assert bot == b""
    assert len(fragment) == len(source) + len(source) % 2
    assert fragment[: len(source)] == source
    assert fragment[len(source) :] in (b"", b"\x00")
    with av.open(io.BytesIO(fragment), "r") as container:
        decoded = len(list(container.decode(video=0)))
    assert decoded == FRAMES


def test_modality_must_fit_the_sop_class(mp4: Path) -> None:
    with pytest.raises(ValueError, match=r"modality XC .* expected ES"):
        build_video(video_stream(mp4), context=object_context(VIDEO_ENDOSCOPIC, "XC"))
    with pytest.raises(ValueError, match=r"modality ES .* expected GM"):
        build_video(video_stream(mp4), context=object_context(VIDEO_MICROSCOPIC, "ES"))


def test_custom_sop_class_keeps_the_modality(mp4: Path) -> None:
    dataset = build_video(video_stream(mp4), context=object_context("1.2.3.4", "OT"))
    assert dataset.Modality == "OT"


def test_paired_region_gets_an_empty_laterality(mp4: Path) -> None:
    region = ("40983000", "SCT", "Upper arm")
    dataset = build_video(video_stream(mp4), context=object_context(), anatomic_region=region)
    assert dataset.Laterality == ""
    item = dataset.AnatomicRegionSequence[0]
    assert (item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning) == region


def test_unpaired_region_omits_laterality(mp4: Path) -> None:
    region = ("71854001", "SCT", "Colon")
    dataset = build_video(video_stream(mp4), context=object_context(), anatomic_region=region)
    assert "Laterality" not in dataset


def test_timing_content_date_and_mpeg2_method(mp4: Path) -> None:
    recorded = dt.datetime(2025, 6, 7, 8, 9, 10)  # noqa: DTZ001
    stream = video_stream(
        mp4, codec="mpeg2video", frame_rate=Fraction(30000, 1001), content_datetime=recorded
    )
    dataset = build_video(stream, context=object_context())
    assert dataset.FrameTime == "33.3667"
    assert dataset.CineRate == 30
    assert dataset.RecommendedDisplayFrameRate == 30
    assert dataset.ActualFrameDuration == 33
    assert (dataset.StartTrim, dataset.StopTrim) == (1, FRAMES)
    assert dataset.LossyImageCompressionMethod == "ISO_13818_2"
    assert (dataset.ContentDate, dataset.ContentTime) == ("20250607", "080910")
    assert dataset.AcquisitionDateTime == "20250607080910"
    assert dataset.BurnedInAnnotation == "YES"


def test_aware_recording_time_is_shown_in_the_conversion_zone(mp4: Path) -> None:
    zone = dt.timezone(dt.timedelta(hours=2))
    context = attrs.evolve(object_context(), timezone=zone)
    recorded = dt.datetime(2025, 6, 7, 23, 30, 0, tzinfo=dt.UTC)
    dataset = build_video(video_stream(mp4, content_datetime=recorded), context=context)
    assert (dataset.ContentDate, dataset.ContentTime) == ("20250608", "013000")


def test_content_time_without_a_recorded_one_is_never_the_clocks(mp4: Path) -> None:
    """Without a recorded start: the file's modification time, else the day at midnight."""
    context = attrs.evolve(object_context(), burned_in_annotation=False)
    dataset = build_video(video_stream(mp4), context=context)
    assert (dataset.ContentDate, dataset.ContentTime) == ("20260102", "000000")
    assert dataset.BurnedInAnnotation == "NO"
    written = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    zone = dt.timezone(dt.timedelta(hours=1))
    context = attrs.evolve(context, source_time=written, timezone=zone)
    dataset = build_video(video_stream(mp4), context=context)
    assert (dataset.ContentDate, dataset.ContentTime) == ("20250304", "060607")


@pytest.fixture(params=["kernel copy", "no copy_file_range", "copy_file_range fails"])
def copy_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The stream copy in the kernel, or in user space where the kernel copy is unavailable."""
    mode: str = request.param
    if mode == "no copy_file_range":
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    elif mode == "copy_file_range fails":

        def cross_device(*_args: object) -> int:
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        monkeypatch.setattr(os, "copy_file_range", cross_device, raising=False)
    return mode


@pytest.mark.parametrize("size", [1001, 1002])
def test_writer_layout_and_padding(tmp_path: Path, mp4: Path, size: int, copy_mode: str) -> None:
    payload = bytes(range(256)) * 4
    payload = (payload * 2)[:size]
    source = tmp_path / "stream.bin"
    source.write_bytes(payload)
    stream = video_stream(source)
    dataset = build_video(
        video_stream(mp4, size_bytes=mp4.stat().st_size), context=object_context()
    )
    target = tmp_path / "out.dcm"
    write_video(dataset, stream, target)
    raw = target.read_bytes()
    padded = payload + b"\x00" * (size % 2)
    header = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"
    item = b"\xfe\xff\x00\xe0" + len(padded).to_bytes(4, "little")
    assert raw.endswith(header + EMPTY_BOT + item + padded + DELIMITER)
    assert fragments(target) == [b"", padded]


def test_failed_write_leaves_nothing(
    tmp_path: Path, mp4: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_write(output: io.BufferedWriter, *_args: object, **_kwargs: object) -> None:
        output.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(video_module, "dcmwrite", failing_write)
    stream = video_stream(mp4)
    dataset = build_video(stream, context=object_context())
    with pytest.raises(OSError, match="disk full"):
        write_video(dataset, stream, tmp_path / "out.dcm")
    assert list(tmp_path.iterdir()) == []
    assert "PixelData" not in dataset


def test_size_mismatch_is_refused(tmp_path: Path, mp4: Path) -> None:
    stream = video_stream(mp4, size_bytes=mp4.stat().st_size + 2)
    dataset = build_video(stream, context=object_context())
    with pytest.raises(ValueError, match="expected"):
        write_video(dataset, stream, tmp_path / "out.dcm")
    assert list(tmp_path.iterdir()) == []


def test_elements_after_pixel_data_are_refused(tmp_path: Path, mp4: Path) -> None:
    stream = video_stream(mp4)
    dataset = build_video(stream, context=object_context())
    dataset.add_new(0xFFFCFFFC, "OB", b"\x00\x00")  # Data Set Trailing Padding
    with pytest.raises(ValueError, match="after Pixel Data"):
        write_video(dataset, stream, tmp_path / "out.dcm")
    assert list(tmp_path.iterdir()) == []


def test_stream_growing_while_copied_is_refused(
    tmp_path: Path, mp4: Path, monkeypatch: pytest.MonkeyPatch, copy_mode: str
) -> None:
    source = tmp_path / "growing.mp4"
    source.write_bytes(mp4.read_bytes())
    stream = video_stream(source)
    dataset = build_video(stream, context=object_context())
    real_dcmwrite = pydicom.dcmwrite

    def write_then_grow(output: io.BufferedWriter, written: Dataset, **kwargs: bool) -> None:
        real_dcmwrite(output, written, **kwargs)
        with source.open("ab") as handle:  # a recorder still appending to the file
            handle.write(b"\x00" * 10)

    monkeypatch.setattr(video_module, "dcmwrite", write_then_grow)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match="the file changed"):
        write_video(dataset, stream, out / "video.dcm")
    assert list(out.iterdir()) == []


def test_stream_over_4_gib_is_refused_before_writing(tmp_path: Path, mp4: Path) -> None:
    big = tmp_path / "big.mp4"
    big.touch()
    os.truncate(big, 2**32)  # sparse: no disk space used
    stream = video_stream(big)
    assert stream.size_bytes > MAX_FRAGMENT_BYTES
    dataset = build_video(stream, context=object_context())
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match="exceeds the 4 GiB a single fragment can hold"):
        write_video(dataset, stream, out / "video.dcm")
    assert list(out.iterdir()) == []
    assert "PixelData" not in dataset


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import datetime as dt, os, resource, sys
    from fractions import Fraction
    from pathlib import Path
    from sendtopacs_core.iods._modules import ObjectContext
    from sendtopacs_core.iods.video import VIDEO_ENDOSCOPIC, VideoStream, build_video, write_video
    from sendtopacs_core.model import ConversionType, Study

    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    stream = VideoStream(
        path=source, size_bytes=source.stat().st_size,
        transfer_syntax_uid="1.2.840.10008.1.2.4.102", width=1280, height=720,
        frame_count=9000, frame_rate=Fraction(30), codec="h264", content_datetime=None,
    )
    context = ObjectContext(
        study=Study(), study_instance_uid="2.25.1", series_instance_uid="2.25.2",
        series_number=1, instance_number=1, sop_class_uid=VIDEO_ENDOSCOPIC,
        sop_instance_uid="2.25.3", modality="ES", conversion_type=ConversionType.DV,
        burned_in_annotation=None, institution_name=None, station_name=None,
        source_ae_title=None, day=dt.date(2026, 1, 1), study_date="",
    )
    dataset = build_video(stream, context=context)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    write_video(dataset, stream, target)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(before, after, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


@pytest.mark.slow
def test_writing_300_mb_streams_with_bounded_memory(tmp_path: Path) -> None:
    source = tmp_path / "big.mp4"
    size = 300 * 1024 * 1024 + 1
    with source.open("wb") as handle:
        chunk = os.urandom(1024 * 1024)
        for _ in range(300):
            handle.write(chunk)
        handle.write(b"\x01")
    target = tmp_path / "big.dcm"
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(source), str(target)],
        capture_output=True,
        text=True,
        check=True,
    )
    before_kib, after_kib, _ = map(int, result.stdout.split())
    growth_mib = (after_kib - before_kib) / 1024
    assert growth_mib < 60, f"peak RSS grew by {growth_mib:.1f} MiB"
    assert target.stat().st_size > size
    with target.open("rb") as handle:
        handle.seek(-(len(chunk) + 2 + len(DELIMITER)), os.SEEK_END)
        tail = handle.read()
    assert tail == chunk + b"\x01\x00" + DELIMITER


def test_kernel_copy_failing_midway_leaves_nothing(
    tmp_path: Path, mp4: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_copy = os.copy_file_range
    calls: list[int] = []

    def failing_second_call(src: int, dst: int, count: int, *offsets: int) -> int:
        calls.append(count)
        if len(calls) > 1:
            raise OSError(errno.EIO, "Input/output error")
        return real_copy(src, dst, min(count, 100), *offsets)

    monkeypatch.setattr(os, "copy_file_range", failing_second_call)
    stream = video_stream(mp4)
    dataset = build_video(stream, context=object_context())
    with pytest.raises(OSError, match="Input/output error"):
        write_video(dataset, stream, tmp_path / "out.dcm")
    assert list(tmp_path.iterdir()) == []
    assert len(calls) == 2
