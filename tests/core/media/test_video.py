"""Tests for sendtopacs_core.media.video: probe, plan, remux and transcode with PyAV clips."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import attrs
import av
import numpy as np
import pytest

from sendtopacs_core.errors import CorruptMediaError
from sendtopacs_core.media.video import (
    H264_BD,
    H264_HP41,
    H264_HP42,
    MPEG2_MPML,
    AudioProbe,
    VideoProbe,
    plan_video,
    probe_video,
    remux,
    transcode,
)
from tests._clips import Clips, make_clips


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return make_clips(tmp_path_factory.mktemp("video"))


def _probe(**changes: object) -> VideoProbe:
    base = VideoProbe(
        container="mov,mp4,m4a,3gp,3g2,mj2",
        codec="h264",
        profile="High",
        level=41,
        width=1280,
        height=720,
        pix_fmt="yuv420p",
        sample_aspect_ratio=None,
        rotation=0,
        frame_rate=Fraction(30),
        average_rate=Fraction(30),
        variable_frame_rate=False,
        interlaced=False,
        frame_count=30,
        duration_s=1.0,
        audio=(),
        size_bytes=1000,
    )
    return attrs.evolve(base, **changes)  # type: ignore[arg-type]


def _pictures(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        return [
            hashlib.sha256(frame.to_ndarray().tobytes()).hexdigest()
            for frame in container.decode(video=0)
        ]


def _packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


# ------------------------------------------------------------------------------ probe + plan


def test_h264_720p30_passes_through_as_102(clips: Clips) -> None:
    probe = probe_video(clips.hd720)
    assert (probe.codec, probe.profile, probe.level) == ("h264", "High", 41)
    assert (probe.width, probe.height, probe.frame_rate) == (1280, 720, Fraction(30))
    assert probe.frame_count == 30
    assert not probe.variable_frame_rate
    assert probe.rotation == 0
    plan = plan_video(probe)
    assert (plan.action, plan.transfer_syntax_uid) == ("pass-through", H264_HP41)
    assert plan.reason == "passed through: H.264 High@4.1 1280x720 30 fps meets .4.102"


def test_1080p5994_high42_passes_through_as_104(clips: Clips) -> None:
    probe = probe_video(clips.hd1080p60)
    assert probe.level == 42
    assert probe.frame_rate == Fraction(60000, 1001)
    plan = plan_video(probe)
    assert (plan.action, plan.transfer_syntax_uid) == ("pass-through", H264_HP42)
    # .102 only: the same stream must be transcoded to 29.97 fps
    strict = plan_video(probe, "h264-high")
    assert strict.action == "transcode"
    assert strict.frame_rate == Fraction(30000, 1001)


def test_baseline_is_transcoded(clips: Clips) -> None:
    probe = probe_video(clips.baseline)
    assert probe.profile == "Constrained Baseline"
    plan = plan_video(probe)
    assert plan.action == "transcode"
    assert plan.reason.startswith(
        "transcoded: Constrained Baseline profile is not allowed by .4.102 (H.264 High Profile)"
    )
    assert (plan.width, plan.height, plan.codec, plan.level) == (320, 240, "libx264", "4.1")


def test_portrait_passes_through(clips: Clips) -> None:
    probe = probe_video(clips.portrait)
    assert (probe.width, probe.height) == (720, 1280)
    assert plan_video(probe).transfer_syntax_uid == H264_HP41
    assert plan_video(probe).action == "pass-through"


def test_rotation_is_read_and_forces_transcode(clips: Clips) -> None:
    probe = probe_video(clips.rotated)
    assert probe.rotation == 90
    plan = plan_video(probe)
    assert plan.action == "transcode"
    assert "90 degree display rotation" in plan.reason
    assert (plan.width, plan.height) == (240, 320)


def test_vfr_is_detected_and_transcoded(clips: Clips) -> None:
    probe = probe_video(clips.vfr)
    assert probe.variable_frame_rate
    plan = plan_video(probe)
    assert plan.action == "transcode"
    assert "variable frame rate" in plan.reason


@pytest.mark.parametrize(("name", "codec"), [("hevc", "hevc"), ("vp9", "vp9"), ("mjpeg", "mjpeg")])
def test_other_codecs_are_transcoded(clips: Clips, name: str, codec: str) -> None:
    probe = probe_video(getattr(clips, name))
    assert probe.codec == codec
    plan = plan_video(probe)
    assert (plan.action, plan.transfer_syntax_uid) == ("transcode", H264_HP41)


def test_mpeg2_ps_576p25_passes_through_as_100(clips: Clips) -> None:
    probe = probe_video(clips.mpeg2)
    assert (probe.codec, probe.width, probe.height, probe.frame_rate) == (
        "mpeg2video",
        720,
        576,
        Fraction(25),
    )
    plan = plan_video(probe)
    assert (plan.action, plan.transfer_syntax_uid) == ("pass-through", MPEG2_MPML)
    assert plan_video(probe, "h264-high").action == "transcode"


def test_h264_in_ts_is_remuxed(clips: Clips) -> None:
    probe = probe_video(clips.h264_ts)
    assert probe.container == "mpegts"
    plan = plan_video(probe)
    assert (plan.action, plan.transfer_syntax_uid) == ("remux", H264_HP41)
    assert "mpegts container is not allowed" in plan.reason


def test_mono_44k_aac_is_remuxed_without_audio(clips: Clips) -> None:
    probe = probe_video(clips.mono_aac)
    assert probe.audio == (
        AudioProbe(codec="aac", sample_rate=44100, channels=1, bit_rate=probe.audio[0].bit_rate),
    )
    plan = plan_video(probe)
    assert (plan.action, plan.keep_audio) == ("remux", False)
    assert plan.reason.startswith("remuxed: AAC mono 44.1 kHz audio does not conform")


def test_conforming_audio_is_kept() -> None:
    stereo = AudioProbe(codec="aac", sample_rate=48000, channels=2, bit_rate=128_000)
    plan = plan_video(_probe(audio=(stereo,)))
    assert (plan.action, plan.keep_audio) == ("pass-through", True)


def test_4k_is_downscaled_to_1080p() -> None:
    plan = plan_video(_probe(width=3840, height=2160, level=51))
    assert (plan.action, plan.width, plan.height, plan.level) == ("transcode", 1920, 1080, "4.1")
    assert plan.transfer_syntax_uid == H264_HP41


def test_1080p120_is_halved_to_60_at_level_42() -> None:
    plan = plan_video(_probe(width=1920, height=1080, frame_rate=Fraction(120), level=52))
    assert (plan.frame_rate, plan.level, plan.transfer_syntax_uid) == (
        Fraction(60),
        "4.2",
        H264_HP42,
    )


def test_anamorphic_is_resampled_to_square() -> None:
    plan = plan_video(_probe(width=1280, height=720, sample_aspect_ratio=Fraction(4, 3)))
    assert (plan.action, plan.width, plan.height) == ("transcode", 1706, 720)


def test_bd_and_mpeg2_named_formats() -> None:
    bd = plan_video(_probe(frame_rate=Fraction(50)), "h264-bd")
    assert (bd.action, bd.transfer_syntax_uid) == ("pass-through", H264_BD)
    bd30 = plan_video(_probe(), "h264-bd")
    assert (bd30.action, bd30.width, bd30.height) == ("transcode", 1280, 720)
    assert bd30.frame_rate == Fraction(60000, 1001)
    main = plan_video(_probe(), "mpeg2-main")
    assert (main.codec, main.width, main.height, main.container) == ("mpeg2video", 720, 404, "vob")
    high = plan_video(_probe(width=640, height=480), "mpeg2-high")
    assert (high.width, high.height, high.scaled_width, high.scaled_height) == (
        1920,
        1080,
        1440,
        1080,
    )
    with pytest.raises(ValueError, match="unknown video format 'vp9'"):
        plan_video(_probe(), "vp9")


# -------------------------------------------------------------------------- remux, transcode


def test_remux_copies_video_packets_byte_for_byte(clips: Clips, tmp_path: Path) -> None:
    out = tmp_path / "remuxed.mp4"
    remux(clips.mono_aac, out, keep_audio=False)
    probe = probe_video(out)
    assert probe.audio == ()
    assert plan_video(probe).action == "pass-through"
    source, copied = _packets(clips.mono_aac), _packets(out)
    assert hashlib.sha256(b"".join(source)).digest() == hashlib.sha256(b"".join(copied)).digest()
    assert len(source) == len(copied) == 30


def test_remux_ts_to_mp4(clips: Clips, tmp_path: Path) -> None:
    out = tmp_path / "from_ts.mp4"
    remux(clips.h264_ts, out, keep_audio=True)
    probe = probe_video(out)
    assert probe.container == "mov,mp4,m4a,3gp,3g2,mj2"
    assert plan_video(probe).action == "pass-through"
    # Annex B start codes become MP4 length prefixes: the pictures stay identical
    assert _pictures(out) == _pictures(clips.h264_ts)


@pytest.mark.parametrize("name", ["rotated", "vfr", "hevc", "vp9", "mjpeg", "baseline"])
def test_transcode_output_conforms(clips: Clips, tmp_path: Path, name: str) -> None:
    plan = plan_video(probe_video(getattr(clips, name)))
    out = tmp_path / f"{name}.mp4"
    fractions: list[float] = []
    transcode(getattr(clips, name), plan, out, progress=fractions.append, preset="veryfast")
    probe = probe_video(out)
    assert (probe.codec, probe.profile, probe.pix_fmt) == ("h264", "High", "yuv420p")
    assert probe.square_pixels
    assert not probe.variable_frame_rate
    assert probe.rotation == 0
    assert (probe.width, probe.height) == (plan.width, plan.height)
    assert probe.frame_rate == plan.frame_rate
    assert plan_video(probe).action == "pass-through"
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert len(fractions) <= 102


def test_transcode_to_mpeg2(clips: Clips, tmp_path: Path) -> None:
    plan = plan_video(probe_video(clips.baseline), "mpeg2-main")
    out = tmp_path / "mpeg2.mpg"
    transcode(clips.baseline, plan, out)
    probe = probe_video(out)
    assert (probe.codec, probe.width, probe.height) == ("mpeg2video", 320, 240)
    assert plan_video(probe, "mpeg2-main").action == "pass-through"


def test_transcode_failure_deletes_partial_output(tmp_path: Path) -> None:
    source = tmp_path / "fake.mp4"
    source.write_text("not a video")
    out = tmp_path / "out.mp4"
    out.write_bytes(b"partial")
    plan = plan_video(_probe(profile="Main"))
    with pytest.raises(CorruptMediaError, match=r"fake\.mp4: cannot open the video"):
        transcode(source, plan, out)
    assert not out.exists()
    with pytest.raises(ValueError, match="not a transcode plan"):
        transcode(source, plan_video(_probe()), out)


# ---------------------------------------------------------------------------------- hostile


def test_truncated_mp4(clips: Clips, tmp_path: Path) -> None:
    data = clips.hd720.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CorruptMediaError,
        match=rf"cut\.mp4: truncated: media data ends at byte {len(data) // 2} of",
    ):
        probe_video(cut)


def test_audio_only(clips: Clips) -> None:
    with pytest.raises(CorruptMediaError, match=r"audio\.m4a: no video stream"):
        probe_video(clips.audio_only)


def test_text_file_named_mp4(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a text file, not a video\n" * 20)
    with pytest.raises(CorruptMediaError, match=r"notes\.mp4: not a readable video container"):
        probe_video(fake)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(CorruptMediaError, match=r"empty\.mp4: empty file"):
        probe_video(empty)
    with pytest.raises(CorruptMediaError, match=r"missing\.mp4: cannot read the file"):
        probe_video(tmp_path / "missing.mp4")


def test_zero_frames(tmp_path: Path) -> None:
    # a video track that never receives a packet (the audio keeps the file non-empty)
    path = tmp_path / "zero.mkv"
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        astream = out.add_stream("aac", rate=48000, layout="stereo")
        silence = np.zeros((1, 9600), np.int16)
        aframe = av.AudioFrame.from_ndarray(silence, format="s16", layout="stereo")
        aframe.sample_rate = 48000
        for packet in [*astream.encode(aframe), *astream.encode(None)]:
            out.mux(packet)
    with pytest.raises(CorruptMediaError, match=r"zero\.mkv: 0 frames"):
        probe_video(path)


def test_undecodable_payload(clips: Clips, tmp_path: Path) -> None:
    data = bytearray(clips.baseline.read_bytes())
    start = data.index(b"mdat") + 4
    data[start:] = bytes(len(data) - start)
    broken = tmp_path / "zeroed.mp4"
    broken.write_bytes(bytes(data))
    with pytest.raises(CorruptMediaError, match=r"zeroed\.mp4: codec h264 cannot be decoded"):
        probe_video(broken)
    out = tmp_path / "zeroed-out.mp4"
    with pytest.raises(CorruptMediaError, match=r"zeroed\.mp4: decoding failed"):
        transcode(broken, plan_video(_probe(profile="Main")), out)
    assert not out.exists()
