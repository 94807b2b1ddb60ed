"""Generated video clips (PyAV, a second or less each) shared by the video tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import attrs
import av
import numpy as np

X264_HIGH_41 = {
    "preset": "ultrafast",
    "profile": "high",
    "level": "4.1",
    "x264-params": "8x8dct=1:log-level=error",
}
_X264_HIGH = {"preset": "ultrafast", "profile": "high", "x264-params": "8x8dct=1:log-level=error"}


def frame_for(index: int, width: int, height: int) -> av.VideoFrame:
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = (index * 7) % 256
    array[: height // 4, :, 1] = 200
    return av.VideoFrame.from_ndarray(array, format="rgb24")


def write_clip(
    path: Path,
    *,
    codec: str = "libx264",
    width: int = 320,
    height: int = 240,
    rate: Fraction | int = 30,
    frames: int = 30,
    options: dict[str, str] | None = None,
    fmt: str | None = None,
    pix_fmt: str = "yuv420p",
    rotation: int | None = None,
    pts: list[int] | None = None,
    audio: tuple[int, str] | None = None,
) -> Path:
    with av.open(str(path), "w", format=fmt, options={"movflags": "+faststart"}) as out:
        stream = out.add_stream(codec, rate=Fraction(rate), options=options or {})
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        astream = None
        audio_rate, layout = audio or (48000, "stereo")
        if audio is not None:
            astream = out.add_stream("aac", rate=audio_rate, layout=layout)
        for i in range(frames):
            frame = frame_for(i, width, height)
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if astream is not None:
            samples = np.zeros((1, audio_rate // 10 * (2 if layout == "stereo" else 1)), np.int16)
            aframe = av.AudioFrame.from_ndarray(samples, format="s16", layout=layout)
            aframe.sample_rate = audio_rate
            for packet in [*astream.encode(aframe), *astream.encode(None)]:
                out.mux(packet)
    return path


@attrs.frozen
class Clips:
    hd720: Path
    hd1080p60: Path
    baseline: Path
    portrait: Path
    rotated: Path
    vfr: Path
    hevc: Path
    vp9: Path
    mjpeg: Path
    mpeg2: Path
    h264_ts: Path
    mono_aac: Path
    audio_only: Path


def make_clips(d: Path) -> Clips:
    """Write every clip of :class:`Clips` into the folder ``d``."""
    high41 = {**_X264_HIGH, "level": "4.1"}
    vfr_pts = [round(i * 1000 / 30) for i in range(15)] + [500 + i * 50 for i in range(15)]
    audio_only = d / "audio.m4a"
    with av.open(str(audio_only), "w", format="mp4") as out:
        astream = out.add_stream("aac", rate=48000, layout="stereo")
        aframe = av.AudioFrame.from_ndarray(
            np.zeros((1, 9600), np.int16), format="s16", layout="stereo"
        )
        aframe.sample_rate = 48000
        for packet in [*astream.encode(aframe), *astream.encode(None)]:
            out.mux(packet)
    return Clips(
        hd720=write_clip(d / "hd720.mp4", width=1280, height=720, options=high41),
        hd1080p60=write_clip(
            d / "hd1080p60.mp4",
            width=1920,
            height=1080,
            rate=Fraction(60000, 1001),
            frames=15,
            options={**_X264_HIGH, "level": "4.2"},
        ),
        baseline=write_clip(d / "baseline.mp4", options={"preset": "ultrafast"}, frames=10),
        portrait=write_clip(d / "portrait.mp4", width=720, height=1280, frames=10, options=high41),
        rotated=write_clip(d / "rotated.mp4", rotation=-90, frames=10, options=high41),
        vfr=write_clip(d / "vfr.mp4", frames=30, pts=vfr_pts, options=high41),
        hevc=write_clip(
            d / "hevc.mp4", codec="libx265", frames=10, options={"x265-params": "log-level=error"}
        ),
        vp9=write_clip(d / "vp9.webm", codec="libvpx-vp9", frames=10, fmt="webm"),
        mjpeg=write_clip(d / "mjpeg.avi", codec="mjpeg", frames=10, pix_fmt="yuvj420p", fmt="avi"),
        mpeg2=write_clip(
            d / "mpeg2.mpg",
            codec="mpeg2video",
            width=720,
            height=576,
            rate=25,
            frames=25,
            fmt="vob",
        ),
        h264_ts=write_clip(d / "h264.ts", frames=30, options=high41, fmt="mpegts"),
        mono_aac=write_clip(d / "mono.mp4", frames=30, options=high41, audio=(44100, "mono")),
        audio_only=audio_only,
    )
