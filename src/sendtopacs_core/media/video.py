"""Video files: probe, decide pass-through / remux / transcode, and do it (reference 4 and 5).

:func:`probe_video` opens a file with PyAV and demuxes every video packet once (no decode
beyond the first frame) to count frames and check the timestamps. :func:`plan_video` applies
the decision tree of reference 5.3 and returns a :class:`VideoPlan`; :func:`remux` and
:func:`transcode` (in :mod:`sendtopacs_core.media._video_transcode`) carry it out.

This module never imports pydicom: the transfer syntax UIDs are plain strings.
"""

from __future__ import annotations

import heapq
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Final

import attrs
import av
import av.error

from sendtopacs_core.errors import CorruptMediaError, UnsupportedMediaError
from sendtopacs_core.media._video_transcode import (
    _L41_FS,
    _L41_MBPS,
    _L42_FS,
    _L42_MBPS,
    _NTSC,
    _SHORT_UID,
    H264_BD,
    H264_HP41,
    H264_HP42,
    MPEG2_MPHL,
    MPEG2_MPML,
    VIDEO_FORMATS,
    VideoPlan,
    _fit,
    _fixed_target,
    _h264_target,
    _same_rate,
    remux,
    transcode,
)

__all__ = [
    "H264_BD",
    "H264_HP41",
    "H264_HP42",
    "MPEG2_MPHL",
    "MPEG2_MPML",
    "VIDEO_FORMATS",
    "AudioProbe",
    "VideoPlan",
    "VideoProbe",
    "plan_video",
    "probe_video",
    "remux",
    "transcode",
]

_MP4_FORMAT: Final = "mov,mp4,m4a,3gp,3g2,mj2"
_MPEG2_CONTAINERS: Final = frozenset({"mpeg", "vob", "mpegts", _MP4_FORMAT})
_H264_420: Final = frozenset({"yuv420p", "yuvj420p"})
_SYNTAX_NAMES: Final = {
    MPEG2_MPML: "MPEG-2 MP@ML",
    MPEG2_MPHL: "MPEG-2 MP@HL",
    H264_HP41: "H.264 High Profile",
    H264_BD: "H.264 BD-compatible High Profile",
    H264_HP42: "H.264 High Profile Level 4.2",
}
# Table 8-4 of PS3.5: the progressive BD sizes and rates we can produce, and the interlaced
# ones we can only pass through.
_BD_PROGRESSIVE: Final = {
    (1280, 720): (Fraction(50), 60 * _NTSC, Fraction(24), 24 * _NTSC),
    (1920, 1080): (Fraction(24), 24 * _NTSC),
}
_BD_INTERLACED: Final = {(1920, 1080): (Fraction(25), 30 * _NTSC)}
_DECODER_NAMES: Final = {"libdav1d": "av1", "libaom-av1": "av1", "libvpx-vp9": "vp9"}
_VFR_TOLERANCE: Final = 0.1  # fraction of the mean frame duration beyond rounding
_REORDER_DEPTH: Final = 32  # packets kept to sort B-frame pts back into display order
_DECODE_ATTEMPTS: Final = 64  # packets fed to the decoder before giving up on a first frame


def _fps_text(rate: Fraction) -> str:
    value = float(rate)
    return f"{value:g}" if value == round(value) else f"{value:.2f}"


def _positive_rate(
    _instance: object, _attribute: attrs.Attribute[Fraction], value: Fraction
) -> None:
    if not value > 0:
        raise ValueError(f"frame rate must be positive, got {value}")


@attrs.frozen(kw_only=True)
class AudioProbe:
    """One audio stream.

    Attributes
    ----------
    codec
        The FFmpeg codec name (``aac``, ``mp3``, ``mp2``, ``ac3``, ``pcm_s16le``...).
    sample_rate
        Samples per second.
    channels
        Number of channels.
    bit_rate
        Bits per second, or ``None`` when the container does not say.
    """

    codec: str
    sample_rate: int
    channels: int
    bit_rate: int | None

    def describe(self) -> str:
        """Return e.g. ``AAC mono 44.1 kHz``."""
        layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(self.channels, f"{self.channels}-ch")
        return f"{self.codec.upper()} {layout} {self.sample_rate / 1000:g} kHz"


@attrs.frozen(kw_only=True)
class VideoProbe:
    """What :func:`probe_video` found in a video file.

    Attributes
    ----------
    container
        The PyAV/FFmpeg demuxer name (``mov,mp4,m4a,3gp,3g2,mj2``, ``mpegts``, ``mpeg``...).
    codec
        The video codec (``h264``, ``hevc``, ``mpeg2video``, ``vp9``, ``mjpeg``, ``mpeg4``).
    profile
        ``High``, ``Main``, ``Constrained Baseline``, ``High 10``..., or ``None``.
    level
        The codec level as coded (41 for H.264 4.1), or ``None`` when unknown.
    width, height
        The displayed picture size (after SPS cropping), before rotation and SAR.
    pix_fmt
        The decoder pixel format (``yuv420p``...), or ``""`` when unknown.
    sample_aspect_ratio
        The pixel aspect ratio; ``None`` or 1 mean square pixels.
    rotation
        Clockwise degrees (0, 90, 180 or 270) the display matrix asks a player to turn the
        picture (a portrait phone video is usually 90).
    frame_rate
        The nominal rate (``stream.base_rate``, else ``guessed_rate``).
    average_rate
        The average rate from the container, or ``None``.
    variable_frame_rate
        ``True`` when the packet durations differ beyond timestamp rounding.
    interlaced
        ``True`` when the codec or the first decoded frame says the video is interlaced.
    frame_count
        The number of video packets demuxed (coded frames).
    duration_s
        The duration in seconds.
    audio
        The audio streams.
    size_bytes
        The file size.
    """

    container: str
    codec: str
    profile: str | None
    level: int | None
    width: int = attrs.field(validator=attrs.validators.gt(0))
    height: int = attrs.field(validator=attrs.validators.gt(0))
    pix_fmt: str
    sample_aspect_ratio: Fraction | None
    rotation: int = attrs.field(validator=attrs.validators.in_((0, 90, 180, 270)))
    frame_rate: Fraction = attrs.field(validator=_positive_rate)
    average_rate: Fraction | None
    variable_frame_rate: bool
    interlaced: bool
    frame_count: int = attrs.field(validator=attrs.validators.gt(0))
    duration_s: float
    audio: tuple[AudioProbe, ...] = ()
    size_bytes: int = 0

    @property
    def square_pixels(self) -> bool:
        """Whether the sample aspect ratio is unknown or 1:1."""
        return self.sample_aspect_ratio is None or self.sample_aspect_ratio == 1

    @property
    def macroblocks(self) -> int:
        """16x16 macroblocks per frame."""
        return math.ceil(self.width / 16) * math.ceil(self.height / 16)


# --------------------------------------------------------------------------------- probing


def probe_video(path: str | os.PathLike[str]) -> VideoProbe:
    """Open ``path`` with PyAV and describe its first video stream.

    Raises
    ------
    CorruptMediaError
        Unreadable, truncated, no video stream, 0 frames, or a codec that cannot be decoded.
    UnsupportedMediaError
        The file is a directory or not a media container at all.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CorruptMediaError(path, f"cannot read the file ({exc.strerror})") from exc
    if not path.is_file():
        raise UnsupportedMediaError(path, "not a regular file")
    if size == 0:
        raise CorruptMediaError(path, "empty file (0 bytes)")
    try:
        container = av.open(os.fspath(path), metadata_errors="ignore")
    except av.error.InvalidDataError as exc:
        raise CorruptMediaError(
            path, f"not a readable video container ({_av_reason(exc)})"
        ) from exc
    except (av.error.FFmpegError, OSError) as exc:
        raise CorruptMediaError(path, f"cannot open the video ({_av_reason(exc)})") from exc
    with container:
        try:
            return _probe_open(path, size, container)
        except av.error.FFmpegError as exc:
            raise CorruptMediaError(path, f"demuxing failed ({_av_reason(exc)})") from exc


def _av_reason(exc: BaseException) -> str:
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    return str(exc)


class _PacketScan:
    """Counts packets, tracks the pts deltas in display order and decodes the first frame."""

    def __init__(self, stream: av.VideoStream, data_end: int) -> None:
        self.stream = stream
        self.count = 0
        self.data_end = data_end
        self.low: int | None = None  # smallest and largest pts delta: memory stays bounded
        self.high: int | None = None
        self.first_frame: av.VideoFrame | None = None
        self.decode_error = ""
        self._pending: list[int] = []
        self._last_pts: int | None = None
        self._attempts = 0

    def feed(self, packet: av.Packet[av.VideoStream]) -> None:
        self.count += 1
        if packet.pos is not None and packet.pos >= 0:
            self.data_end = max(self.data_end, packet.pos + packet.size)
        if packet.pts is not None:
            heapq.heappush(self._pending, packet.pts)
            if len(self._pending) > _REORDER_DEPTH:
                self._note(heapq.heappop(self._pending))
        if self.first_frame is None and not self.decode_error and self._attempts < _DECODE_ATTEMPTS:
            self._attempts += 1
            self._decode(packet)

    def finish(self) -> None:
        while self._pending:
            self._note(heapq.heappop(self._pending))
        if self.first_frame is None and not self.decode_error and self.count:
            self._decode(None)

    def _decode(self, packet: av.Packet[av.VideoStream] | None) -> None:
        try:
            frames = self.stream.decode(packet)
        except av.error.FFmpegError as exc:
            self.decode_error = _av_reason(exc)
        else:
            self.first_frame = frames[0] if frames else None

    def _note(self, pts: int) -> None:
        if self._last_pts is not None:
            delta = pts - self._last_pts
            self.low = delta if self.low is None else min(self.low, delta)
            self.high = delta if self.high is None else max(self.high, delta)
        self._last_pts = pts

    def variable(self, rate: Fraction) -> bool:
        time_base = self.stream.time_base
        if self.low is None or self.high is None or time_base is None:
            return False
        mean = float(1 / rate) / float(time_base)
        return self.high - self.low > max(2, _VFR_TOLERANCE * mean)


def _scan(path: Path, size: int, container: av.container.InputContainer) -> _PacketScan:
    stream = container.streams.video[0]
    index_end = max((e.pos + e.size for e in stream.index_entries if e.pos >= 0), default=0)
    scan = _PacketScan(stream, index_end)
    for packet in container.demux(stream):
        if packet.size:
            scan.feed(packet)
    scan.finish()
    if scan.count == 0:
        raise CorruptMediaError(path, "0 frames: the video stream holds no packets")
    if scan.data_end > size:
        raise CorruptMediaError(
            path, f"truncated: media data ends at byte {size} of {scan.data_end}"
        )
    if stream.frames and scan.count < stream.frames:
        raise CorruptMediaError(path, f"truncated: {scan.count} of {stream.frames} frames present")
    return scan


def _probe_open(path: Path, size: int, container: av.container.InputContainer) -> VideoProbe:
    if not container.streams.video:
        raise CorruptMediaError(path, "no video stream")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    codec = _DECODER_NAMES.get(ctx.name, ctx.name)
    audio = tuple(
        AudioProbe(
            codec=a.codec_context.name,
            sample_rate=a.codec_context.sample_rate,
            channels=a.codec_context.channels,
            bit_rate=a.codec_context.bit_rate or None,
        )
        for a in container.streams.audio
    )
    scan = _scan(path, size, container)
    frame = scan.first_frame
    if frame is None:
        detail = f": {scan.decode_error}" if scan.decode_error else ""
        raise CorruptMediaError(path, f"codec {codec} cannot be decoded{detail}")
    rate = stream.base_rate or stream.guessed_rate or stream.average_rate
    if rate is None or rate <= 0:
        raise CorruptMediaError(path, "the video stream has no frame rate")
    rate = Fraction(rate)
    sar = stream.sample_aspect_ratio or ctx.sample_aspect_ratio
    return VideoProbe(
        container=container.format.name,
        codec=codec,
        profile=stream.profile or ctx.profile,
        level=ctx.level if ctx.level > 0 else None,
        width=ctx.width or frame.width,
        height=ctx.height or frame.height,
        pix_fmt=ctx.pix_fmt or frame.format.name,
        sample_aspect_ratio=Fraction(sar) if sar else None,
        rotation=(-round(frame.rotation / 90) * 90) % 360,
        frame_rate=rate,
        average_rate=Fraction(stream.average_rate) if stream.average_rate else None,
        variable_frame_rate=scan.variable(rate),
        interlaced=bool(frame.interlaced_frame) or ctx.field_order > 1,
        frame_count=scan.count,
        duration_s=container.duration / 1_000_000
        if container.duration
        else scan.count / float(rate),
        audio=audio,
        size_bytes=size,
    )


# -------------------------------------------------------------------------------- planning


def plan_video(probe: VideoProbe, video_format: str = "auto") -> VideoPlan:
    """Decide pass-through, remux or transcode for ``probe`` (reference 5.3).

    ``video_format`` is ``auto`` (keep the stream when it meets .4.100-.4.104, else H.264
    High 4.1/4.2), ``h264-high`` (.4.102 only), ``h264-bd`` (.4.103), ``mpeg2-main``
    (.4.100) or ``mpeg2-high`` (.4.101).
    """
    if video_format not in VIDEO_FORMATS:
        raise ValueError(
            f"unknown video format {video_format!r} (expected one of {', '.join(VIDEO_FORMATS)})"
        )
    if probe.codec == "h264":
        allowed = {
            "auto": (H264_HP41, H264_HP42),
            "h264-high": (H264_HP41,),
            "h264-bd": (H264_BD,),
        }.get(video_format, ())
        meets, why_not = _h264_syntax(probe, allowed)
    elif probe.codec == "mpeg2video":
        allowed = {
            "auto": (MPEG2_MPML, MPEG2_MPHL),
            "mpeg2-main": (MPEG2_MPML,),
            "mpeg2-high": (MPEG2_MPHL,),
        }.get(video_format, ())
        meets, why_not = _mpeg2_syntax(probe, allowed)
    elif probe.codec == "hevc":
        meets, why_not = None, "HEVC is always transcoded (.4.107/.4.108 are rarely accepted)"
    else:
        meets, why_not = None, f"{probe.codec} is not a DICOM video codec"
    if meets is None:
        return _transcode_plan(probe, video_format, why_not)
    return _keep_plan(probe, meets)


def _describe(probe: VideoProbe) -> str:
    if probe.codec == "h264":
        level = f"@{probe.level / 10:g}" if probe.level else ""
        name = f"H.264 {probe.profile or ''}{level}"
    else:
        name = "MPEG-2" if probe.codec == "mpeg2video" else probe.codec
    return f"{name} {probe.width}x{probe.height} {_fps_text(probe.frame_rate)} fps"


def _blocker(probe: VideoProbe, *, allow_sar: bool = False, allow_interlace: bool) -> str:
    if not allow_sar and not probe.square_pixels:
        return f"non-square pixels (SAR {probe.sample_aspect_ratio}) must be resampled"
    if probe.rotation:
        return f"a {probe.rotation} degree display rotation must be applied to the pixels"
    if probe.variable_frame_rate:
        return "variable frame rate must become constant"
    if probe.interlaced and not allow_interlace:
        return "interlaced video must be deinterlaced"
    return ""


def _h264_syntax(probe: VideoProbe, allowed: tuple[str, ...]) -> tuple[str | None, str]:
    """Return the syntax among ``allowed`` the stream meets, or ``None`` and why not."""
    if not allowed:
        return None, "H.264 does not meet an MPEG-2 transfer syntax"
    target = " or ".join(f"{_SHORT_UID[u]} ({_SYNTAX_NAMES[u]})" for u in allowed)
    if probe.profile != "High":
        return None, f"{probe.profile or 'unknown'} profile is not allowed by {target}"
    if probe.pix_fmt not in _H264_420:
        return None, f"pixel format {probe.pix_fmt} is not 8-bit 4:2:0 as {target} requires"
    mbs, rate, level = probe.macroblocks, float(probe.frame_rate), probe.level or 99
    found: str | None = None
    bd_interlaced = False
    for uid in allowed:
        fits41 = level <= 41 and mbs <= _L41_FS and mbs * rate <= _L41_MBPS
        fits42 = level <= 42 and mbs <= _L42_FS and mbs * rate <= _L42_MBPS
        if (uid == H264_HP41 and fits41) or (uid == H264_HP42 and fits42):
            found = uid
        elif uid == H264_BD and level <= 41:
            size = (probe.width, probe.height)
            table = _BD_INTERLACED if probe.interlaced else _BD_PROGRESSIVE
            if any(_same_rate(probe.frame_rate, r) for r in table.get(size, ())):
                found, bd_interlaced = uid, probe.interlaced
        if found:
            break
    if found is None:
        return None, f"{_describe(probe)} does not fit {target}"
    blocker = _blocker(probe, allow_interlace=bd_interlaced)
    if blocker:
        return None, blocker
    return found, ""


def _mpeg2_syntax(probe: VideoProbe, allowed: tuple[str, ...]) -> tuple[str | None, str]:
    if not allowed:
        return None, "MPEG-2 does not meet an H.264 transfer syntax"
    rate, size = probe.frame_rate, (probe.width, probe.height)
    if probe.pix_fmt != "yuv420p":
        return None, f"pixel format {probe.pix_fmt} is not 4:2:0 as MPEG-2 Main Profile needs"
    for uid in allowed:
        if uid == MPEG2_MPML:
            max_rows = 576 if _same_rate(rate, Fraction(25)) else 480
            rate_ok = any(_same_rate(rate, r) for r in (25, 30 * _NTSC, 30))
            if probe.width <= 720 and probe.height <= max_rows and rate_ok:
                blocker = _blocker(probe, allow_sar=True, allow_interlace=True)
                return (None, blocker) if blocker else (uid, "")
        if uid == MPEG2_MPHL:
            rates: tuple[Fraction, ...] = (Fraction(25), 30 * _NTSC, Fraction(30))
            if size == (1280, 720):
                rates += (Fraction(50), 60 * _NTSC, Fraction(60))
            if size in ((1920, 1080), (1280, 720)) and any(_same_rate(rate, r) for r in rates):
                blocker = _blocker(probe, allow_interlace=True)
                return (None, blocker) if blocker else (uid, "")
    target = " or ".join(_SHORT_UID[u] for u in allowed)
    return None, f"{_describe(probe)} does not fit {target}"


def _audio_problem(probe: VideoProbe, *, mpeg2: bool) -> str:
    """Why the audio may not stay in the DICOM stream (PS3.5 8.2.12), or ``""``."""
    for audio in probe.audio:
        rate, channels, bit_rate = audio.sample_rate, audio.channels, audio.bit_rate or 0
        if mpeg2:
            ok = audio.codec == "mp3"
            rule = "MPEG-2 MP@ML/HL allow only MP3 audio"
        elif audio.codec == "aac":
            ok = rate == 48_000 and channels in (2, 6) and bit_rate <= 640_000
            rule = "AAC must be 48 kHz stereo or 5.1 (PS3.5 8.2.12)"
        elif audio.codec == "mp3":
            ok = rate in (32_000, 44_100, 48_000) and bit_rate <= 320_000
            rule = "MP3 must be 32/44.1/48 kHz and at most 320 kbit/s (PS3.5 8.2.12)"
        elif audio.codec == "mp2":
            ok = rate in (32_000, 44_100, 48_000) and channels == 2 and bit_rate <= 384_000
            rule = "MP2 must be 32/44.1/48 kHz stereo (PS3.5 8.2.12)"
        else:
            ok, rule = False, "only AAC, MP3 and MP2 are allowed in MP4 (PS3.5 8.2.12)"
        if not ok:
            return f"{audio.describe()} audio does not conform: {rule}"
    return ""


def _keep_plan(probe: VideoProbe, uid: str) -> VideoPlan:
    mpeg2 = probe.codec == "mpeg2video"
    audio_problem = _audio_problem(probe, mpeg2=mpeg2)
    containers = _MPEG2_CONTAINERS if mpeg2 else frozenset({_MP4_FORMAT})
    out_container = "vob" if mpeg2 else "mp4"
    short = _SHORT_UID[uid]
    if probe.container not in containers:
        reason = (
            f"remuxed: {_describe(probe)} meets {short} but the {probe.container} container "
            f"is not allowed; copied losslessly into {out_container.upper()}"
        )
        if audio_problem:
            reason += f"; {audio_problem}, dropped"
        action = "remux"
    elif audio_problem:
        action = "remux"
        reason = f"remuxed: {audio_problem}, dropped; {_describe(probe)} meets {short}"
    else:
        action = "pass-through"
        reason = f"passed through: {_describe(probe)} meets {short}"
    return VideoPlan(
        transfer_syntax_uid=uid,
        action=action,
        reason=reason,
        keep_audio=bool(probe.audio) and not audio_problem,
        container=out_container,
        source_frames=probe.frame_count,
    )


def _display_size(probe: VideoProbe) -> tuple[int, int]:
    width, height = probe.width, probe.height
    if not probe.square_pixels and probe.sample_aspect_ratio is not None:
        width = round(width * probe.sample_aspect_ratio)
    if probe.rotation in (90, 270):
        width, height = height, width
    return width, height


def _transcode_plan(probe: VideoProbe, video_format: str, why_not: str) -> VideoPlan:
    width, height = _display_size(probe)
    notes: list[str] = []
    codec, level, container = "libx264", None, "mp4"
    if video_format in ("auto", "h264-high"):
        uid, level, scaled, rate = _h264_target(
            width, height, probe.frame_rate, allow_42=video_format == "auto"
        )
        out_w, out_h = scaled
    else:
        uid, (out_w, out_h), rate = _fixed_target(video_format, probe.frame_rate)
        if uid == MPEG2_MPML:
            out_w, out_h = scaled = _fit(width, height, (out_w, out_h))
        else:
            scaled = _fit(width, height, (out_w, out_h), upscale=True)
        if uid == H264_BD:
            level = "4.1"
            if out_h == 720:
                notes.append("BD-compatible 720p (1080p25/29.97 would have to be interlaced)")
        else:
            codec, container = "mpeg2video", "vob"
    if scaled != (out_w, out_h):
        notes.append(f"letterboxed {scaled[0]}x{scaled[1]} into {out_w}x{out_h}")
    if probe.interlaced:
        notes.append("deinterlaced")
    if probe.audio:
        notes.append("audio dropped")
    short = _SHORT_UID[uid]
    detail = f" ({'; '.join(notes)})" if notes else ""
    kind = "H.264 High" if codec == "libx264" else "MPEG-2"
    reason = (
        f"transcoded: {why_not}; now {kind} {out_w}x{out_h} {_fps_text(rate)} fps "
        f"for {short}{detail}"
    )
    return VideoPlan(
        transfer_syntax_uid=uid,
        action="transcode",
        reason=reason,
        keep_audio=False,
        container=container,
        width=out_w,
        height=out_h,
        frame_rate=rate,
        codec=codec,
        level=level,
        scaled_width=scaled[0],
        scaled_height=scaled[1],
        deinterlace=probe.interlaced,
        source_frames=probe.frame_count,
    )
