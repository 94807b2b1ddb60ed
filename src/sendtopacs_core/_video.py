"""Video inputs: probe, plan (pass through, remux or transcode), build and stream-write.

Imported only when a video is converted, so that still-image work does not pay for PyAV.
The stored stream is the source file itself (pass-through) or a remuxed or transcoded file in
a temporary folder that is removed when the object has been written.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydicom.dataset import Dataset

from sendtopacs_core._job import Content, Progress, content_digest
from sendtopacs_core._results import ConversionAction
from sendtopacs_core.errors import ConversionError, UnsupportedMediaError
from sendtopacs_core.iods._modules import ObjectContext
from sendtopacs_core.iods.video import MAX_FRAGMENT_BYTES, VideoStream, build_video, write_video
from sendtopacs_core.media.video import VideoProbe, plan_video, probe_video, remux, transcode
from sendtopacs_core.settings import Settings

__all__ = ["video_contents"]

_ACTIONS = {
    "pass-through": ConversionAction.PASSED_THROUGH,
    "remux": ConversionAction.REMUXED,
    "transcode": ConversionAction.TRANSCODED,
}


def video_contents(settings: Settings, path: Path, progress: Progress | None) -> Iterator[Content]:
    """The one object a video gives; the temporary stream lives until it is written.

    The content digest (for the SOP Instance UID) is taken in a thread while the video is
    probed and planned: both read the whole file, and a recording may be gigabytes.
    """
    stop = threading.Event()
    with ThreadPoolExecutor(1, thread_name_prefix="sendtopacs-digest") as pool:
        digest = pool.submit(content_digest, path, stop=stop)
        try:
            yield from _contents(settings, path, progress, digest.result)
        finally:
            stop.set()


def _contents(
    settings: Settings, path: Path, progress: Progress | None, digest: Callable[[], str]
) -> Iterator[Content]:
    probe = probe_video(path)
    plan = plan_video(probe, str(settings.non_dicom.video_format))
    if plan.action != "transcode" and probe.size_bytes > MAX_FRAGMENT_BYTES:
        raise UnsupportedMediaError(
            path,
            f"{probe.size_bytes} bytes: a video stored as it is must fit in one fragment of "
            f"at most {MAX_FRAGMENT_BYTES} bytes (the fragmentable transfer syntaxes are not "
            "supported)",
        )
    temp_root = settings.main.temp_dir
    with tempfile.TemporaryDirectory(prefix="sendtopacs-video-", dir=temp_root) as scratch:
        stored, stored_probe = path, probe
        if plan.action != "pass-through":
            stored = Path(scratch) / "video.mp4"
            if plan.action == "remux":
                remux(path, stored, keep_audio=plan.keep_audio)
            else:
                report = None if progress is None else _bound(progress, path)
                transcode(path, plan, stored, progress=report)
            stored_probe = probe_video(stored)
        stream = _stream(stored, stored_probe, plan.transfer_syntax_uid)

        def build(context: ObjectContext) -> Dataset:
            return build_video(stream, context=context)

        def write(dataset: Dataset, target: Path, source: Path) -> None:
            try:
                write_video(dataset, stream, target)
            except (OSError, ValueError) as exc:
                raise ConversionError(source, f"cannot write {target}: {exc}") from exc

        yield Content(build, _ACTIONS[plan.action], plan.reason, write=write, digest=digest)


def _stream(path: Path, probe: VideoProbe, transfer_syntax_uid: str) -> VideoStream:
    return VideoStream(
        path=path,
        size_bytes=path.stat().st_size,
        transfer_syntax_uid=transfer_syntax_uid,
        width=probe.width,
        height=probe.height,
        frame_count=probe.frame_count,
        frame_rate=probe.frame_rate,
        codec=probe.codec,
        content_datetime=None,
    )


def _bound(progress: Progress, path: Path) -> Callable[[float], None]:
    def report(fraction: float) -> None:
        progress(path, fraction)

    return report
