"""Video conversion speed and memory: pass-through against ``cp``, transcode against ffmpeg.

Like with like: one process on each side, both cold (every run starts the command: start-up
included), ``--runs`` runs interleaved (ours, the peer, ours...), the ratio the median of the
per-run ratios, peak RSS of each side from GNU time.

- Pass-through: a generated 1080p H.264 High Profile MP4 (``--size-mb``, default 1024: the
  issue's 1 GB) converted by ``sendtopacs convert`` against ``cp`` of the same file, with the
  file in the page cache (``--cold-cache`` adds runs with the page cache dropped before each,
  which needs root and slows everything else on the machine). Goals (issue 3): at least 0.5x
  cp's throughput and a peak RSS of at most 150 MB.
- Transcode: a generated 1080p30 H.264 Baseline Profile clip (``--seconds``, default 10; the
  issue's clip is 60 s: ``--seconds 60``) converted by ``sendtopacs convert`` (transcoded to
  High Profile, Level 4.1) against the ffmpeg command line doing the same transcode (libx264,
  same preset, CRF and x264 parameters, no audio). Goal: at least 0.9x ffmpeg's speed.

Run ``python benchmarks/bench_video.py [--size-mb N] [--seconds N] [--runs N] [--cold-cache]
[--smoke] [--markdown PATH] [--workdir DIR] [--check]``; it needs the project installed and
ffmpeg (``apt-get install ffmpeg``), which also generates the inputs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import av

from _bench import (
    NO_SETTINGS,
    BenchmarkError,
    Comparison,
    Sample,
    Side,
    add_common_options,
    all_met,
    check_cli,
    check_runs,
    compare,
    comparison_table,
    finish,
    machine_line,
    run_in_workdir,
    run_streams,
    sendtopacs_argv,
)

PASS_THROUGH_GOAL: Final = 0.5  # sendtopacs MB/s >= 0.5 x cp's
RSS_GOAL_MB: Final = 150
TRANSCODE_GOAL: Final = 0.9  # sendtopacs speed >= 0.9 x ffmpeg's
STUDY_OPTIONS: Final = ("--patient-id", "BENCH0001", "--patient-name", "Bench^Mark")
#: The transcode sendtopacs does for a Baseline 1080p30 clip, as an ffmpeg command line.
FFMPEG_TRANSCODE: Final = (
    "-an",
    "-vf",
    "setsar=1,format=yuv420p",
    "-c:v",
    "libx264",
    "-profile:v",
    "high",
    "-level:v",
    "4.1",
    "-preset",
    "medium",
    "-crf",
    "18",
    "-x264-params",
    "8x8dct=1:keyint=60:open-gop=0",
    "-movflags",
    "+faststart",
)


def generate_clip(
    ffmpeg: str,
    path: Path,
    *,
    seconds: float,
    profile: str,
    crf: int,
    noise: int,
    max_bytes: int | None = None,
) -> None:
    """Encode a 1080p30 H.264 clip (yuv420p, CFR) with the ffmpeg command line.

    The picture is ffmpeg's ``testsrc2`` with temporal noise (``noise`` sets its strength, so
    the bit rate); ``max_bytes`` stops the output at that size (ffmpeg ``-fs``).
    """
    source = f"testsrc2=s=1920x1080:r=30,noise=alls={noise}:allf=t"
    params = "8x8dct=1" if profile == "high" else "8x8dct=0:cabac=0"
    limit = ["-fs", str(max_bytes)] if max_bytes is not None else []
    argv = [
        ffmpeg, "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i", source,
        "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", profile,
        "-level:v", "4.1", "-crf", str(crf), "-x264-params", params, "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", *limit, str(path),
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchmarkError(f"ffmpeg could not generate {path.name}: {result.stderr.strip()}")


def sendtopacs(files: Sequence[Path], out_dir: Path, settings: Path) -> list[str]:
    return sendtopacs_argv(
        "--settings", str(settings), "-q", "convert", *map(str, files), "-o", str(out_dir),
        "--workers", "1", *STUDY_OPTIONS,
    )  # fmt: skip


def _drop_caches() -> None:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n", encoding="ascii")
    except OSError as exc:
        raise BenchmarkError(f"--cold-cache: cannot drop the page cache ({exc})") from exc


def _fresh(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def one_process_side(
    label: str, argv: list[str], out: Path, work: Path, *, cold_cache: bool = False
) -> Side:
    """One command writing into ``out`` (emptied before each run, not timed)."""

    def prepare(_index: int) -> None:
        _fresh(out)
        if cold_cache:
            _drop_caches()
        else:
            os.sync()  # dirty pages of the last run written first

    def run(index: int) -> Sample:
        return run_streams([argv], work / "logs", f"{out.name}-{index}")

    def check(_index: int) -> None:
        if not any(path.stat().st_size > 0 for path in out.iterdir()):
            raise BenchmarkError(f"{label} wrote nothing into {out}")

    return Side(label, 1, run, prepare=prepare, check=check)


def _generate(  # noqa: PLR0917 - generate_clip's options
    ffmpeg: str, path: Path, seconds: float, profile: str, crf: int, noise: int,
    max_bytes: int | None = None,
) -> None:  # fmt: skip
    """:func:`generate_clip`, unless ``path`` holds the same clip from an earlier run."""
    marker = path.with_suffix(".done")
    wanted = repr((seconds, profile, crf, noise, max_bytes))
    if path.is_file() and marker.is_file() and marker.read_text(encoding="utf-8") == wanted:
        return
    generate_clip(
        ffmpeg, path, seconds=seconds, profile=profile, crf=crf, noise=noise, max_bytes=max_bytes
    )
    marker.write_text(wanted, encoding="utf-8")


def run(args: argparse.Namespace, work: Path) -> int:
    check_cli("convert")
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise BenchmarkError("ffmpeg is not installed (apt-get install ffmpeg)")
    big, baseline = work / "big.mp4", work / "baseline.mp4"
    print(f"generating a {args.size_mb} MiB 1080p High Profile MP4 ...", flush=True)
    _generate(ffmpeg, big, 3600, "high", 8, 30, args.size_mb * 2**20)
    print(f"generating a {args.seconds} s 1080p30 Baseline Profile MP4 ...", flush=True)
    _generate(ffmpeg, baseline, args.seconds, "baseline", 20, 4)
    size_mb = big.stat().st_size / 1e6
    frames = _frames(baseline)
    settings = work / NO_SETTINGS
    out = work / "out"
    comparisons: list[Comparison] = []
    for cache in ["warm", *(["cold"] if args.cold_cache else [])]:
        cold = cache == "cold"
        comparisons.append(
            compare(
                f"pass-through, {cache} page cache",
                one_process_side(
                    "sendtopacs convert big.mp4",
                    sendtopacs([big], out / f"pass-{cache}", settings),
                    out / f"pass-{cache}",
                    work,
                    cold_cache=cold,
                ),
                one_process_side(
                    "cp big.mp4",
                    ["cp", str(big), str(out / f"cp-{cache}")],
                    out / f"cp-{cache}",
                    work,
                    cold_cache=cold,
                ),
                runs=args.runs,
                state="cold",
                kind="rate",
                amount=size_mb,
                unit="MB",
                goal=PASS_THROUGH_GOAL,
            )
        )
    ff_out = out / "ffmpeg"
    comparisons.append(
        compare(
            "transcode Baseline -> High",
            one_process_side(
                "sendtopacs convert baseline.mp4",
                sendtopacs([baseline], out / "transcode", settings),
                out / "transcode",
                work,
            ),
            one_process_side(
                "ffmpeg, the same transcode",
                [
                    ffmpeg,
                    "-nostdin",
                    "-y",
                    "-i",
                    str(baseline),
                    *FFMPEG_TRANSCODE,
                    str(ff_out / "ffmpeg.mp4"),
                ],
                ff_out,
                work,
            ),
            runs=args.runs,
            state="cold",
            kind="rate",
            amount=frames,
            unit="frames",
            goal=TRANSCODE_GOAL,
        )
    )
    pass_rss = max(c.peak_mib("ours") for c in comparisons[:-1]) * 2**20 / 1e6
    rss_met = pass_rss <= RSS_GOAL_MB
    lines = [
        machine_line(
            f"PyAV {av.__version__}, {_ffmpeg_version(ffmpeg)}; big.mp4 {size_mb:.0f} MB "
            f"(1080p H.264 High), baseline.mp4 {args.seconds} s 1080p30 ({frames} frames); "
            "every run starts the command (cold: start-up included); dirty pages written "
            "before each run"
        ),
        "",
        *comparison_table(comparisons),
        f"Goals (issue 3): pass-through >= {PASS_THROUGH_GOAL:g}x cp's throughput; its peak RSS "
        f"{pass_rss:.0f} MB (goal <= {RSS_GOAL_MB} MB: {verdict(rss_met)}); transcode >= "
        f"{TRANSCODE_GOAL:g}x ffmpeg's speed.",
    ]
    return finish(args, lines, all_met(comparisons) and rss_met)


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.frames or sum(1 for _ in container.demux(stream) if _.size)


def _ffmpeg_version(ffmpeg: str) -> str:
    out = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=False)
    return " ".join(out.stdout.split()[:3]) or "ffmpeg"


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=int, default=1024, help="pass-through file (MiB)")
    parser.add_argument("--seconds", type=int, default=10, help="transcode clip length (s)")
    parser.add_argument(
        "--cold-cache", action="store_true", help="also drop the page cache before runs (root)"
    )
    add_common_options(parser)
    args = parser.parse_args(argv)
    check_runs(parser, args)
    if args.smoke:
        args.size_mb, args.seconds = 8, 1
    if args.size_mb < 1 or args.seconds < 1:
        parser.error("--size-mb and --seconds must be at least 1")
    return run_in_workdir(run, args, "bench_video")


if __name__ == "__main__":
    sys.exit(main())
