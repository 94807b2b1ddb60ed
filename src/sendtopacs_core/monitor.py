"""A watched folder: :class:`MonitorRule` (the ``monitors`` settings) and :class:`WatchMode`.

The fields follow the "Monitoring Settings" of the MedDream SendToPACS manual: folder (always
recursive), native events or polling (interval, files per pass), auto-forward, failed-files
folder, retry count and timeout, PACS device, remove sent files or a success folder, tag
updates for this folder; plus the settle window (how long a file must stay unchanged before it
is taken) and the study for non-DICOM files that no worklist item names.

Examples
--------
>>> from pathlib import Path
>>> rule = MonitorRule(name="endo", directory=Path("/srv/endo"), remove_sent=True)
>>> rule.failed_folder
PosixPath('/srv/endo.failed')
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import attrs

from sendtopacs_core.errors import InvalidValueError
from sendtopacs_core.model import Study, TagPattern

__all__ = ["MonitorRule", "WatchMode"]

_MAX_RETRIES: Final = 100


class WatchMode(StrEnum):
    """How a folder is watched."""

    NATIVE = "native"
    """Operating-system events (inotify, FSEvents, ReadDirectoryChangesW), through watchdog."""
    POLLING = "polling"
    """A scan every ``interval_s`` seconds: for network shares, where events do not arrive."""


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _to_path(value: Any) -> Any:
    return Path(value) if isinstance(value, str) and value else value


def _to_mode(value: Any) -> Any:
    try:
        return WatchMode(value)
    except ValueError:
        return value


def _check_mode(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, WatchMode):
        raise InvalidValueError(attribute.name, value, "native or polling")


def _check_name(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value or len(value) > 64 or not value.isprintable():
        raise InvalidValueError(attribute.name, value, "1 to 64 printable characters")


def _check_folder(_instance: Any, attribute: Any, value: Any) -> None:
    if value is None and attribute.name != "directory":
        return
    if not isinstance(value, Path) or not value.is_absolute():
        raise InvalidValueError(attribute.name, value, "expected an absolute folder path")


def _check_positive(_instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86_400:
        raise InvalidValueError(attribute.name, value, "seconds: more than 0, at most 86400")


def _check_settle(_instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3_600:
        raise InvalidValueError(attribute.name, value, "seconds: 0 to 3600")


def _check_count(low: int, high: int) -> Any:
    def check(_instance: Any, attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidValueError(attribute.name, value, f"a whole number from {low} to {high}")

    return check


def _is_bool(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidValueError(attribute.name, value, "true or false")


def _to_float(value: Any) -> Any:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _to_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _check_patterns(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(p, TagPattern) for p in value):
        raise InvalidValueError(attribute.name, value, "expected a list of tag patterns")


def _check_disposition(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and instance.remove_sent:
        raise InvalidValueError(
            attribute.name, str(value), "choose remove_sent or a success folder, not both"
        )
    directory: Path = instance.directory
    for other, label in ((value, "success_dir"), (instance.failed_dir, "failed_dir")):
        if other is not None and (other == directory or directory in other.parents):
            raise InvalidValueError(
                label, str(other), "must not be the watched folder or inside it"
            )


@attrs.frozen(kw_only=True)
class MonitorRule:
    """A watched folder and what happens to the files that arrive in it.

    Parameters
    ----------
    name
        Unique name of the monitor (in logs and the journal).
    directory
        The folder watched, with its sub-folders (a local folder or a mounted share).
    mode
        ``native`` (operating-system events) or ``polling`` (a scan every ``interval_s``).
    interval_s
        Seconds between scans in polling mode (native mode also scans at this interval, to
        catch what events miss).
    scan_count
        Files taken per scan; 0 means all.
    auto_forward
        Send files as they arrive; otherwise they wait in the pending list until sent on
        request (``sendtopacs send --pending``).
    failed_dir
        Where failed files go, as ``<failed_dir>/YYYY-MM-DD/<relative path>`` with a
        ``<name>_reason.txt`` beside; default: a ``<directory>.failed`` folder next to it.
    retry_count
        Attempts after the first one for failures that may pass (no connection, A7xx,
        no answer); permanent failures (rejected SOP class, invalid file) fail at once.
    retry_timeout_s
        Seconds between attempts.
    device
        The device sent to; ``None``: the default device.
    remove_sent
        Delete a file once the PACS has accepted it.
    success_dir
        Move accepted files here (keeping their relative path) instead; ``None`` with
        ``remove_sent`` false leaves them in place (they are then not sent again).
    update_tags
        Attribute updates for this folder's DICOM files, after the ``dicom`` section's.
    settle_s
        Seconds a file's size and time must stay unchanged before it is taken (files still
        being copied are waited for).
    study
        Patient and study for non-DICOM files when no worklist item names them.
    """

    name: str = attrs.field(converter=_strip, validator=_check_name)
    directory: Path = attrs.field(converter=_to_path, validator=_check_folder)
    mode: WatchMode = attrs.field(
        default=WatchMode.NATIVE, converter=_to_mode, validator=_check_mode
    )
    interval_s: float = attrs.field(default=5.0, converter=_to_float, validator=_check_positive)
    scan_count: int = attrs.field(default=0, validator=_check_count(0, 1_000_000))
    auto_forward: bool = attrs.field(default=True, validator=_is_bool)
    failed_dir: Path | None = attrs.field(default=None, converter=_to_path, validator=_check_folder)
    retry_count: int = attrs.field(default=3, validator=_check_count(0, _MAX_RETRIES))
    retry_timeout_s: float = attrs.field(
        default=60.0, converter=_to_float, validator=_check_positive
    )
    device: str | None = attrs.field(default=None, converter=_strip)
    remove_sent: bool = attrs.field(default=False, validator=_is_bool)
    success_dir: Path | None = attrs.field(
        default=None, converter=_to_path, validator=[_check_folder, _check_disposition]
    )
    update_tags: tuple[TagPattern, ...] = attrs.field(
        default=(), converter=_to_tuple, validator=_check_patterns
    )
    settle_s: float = attrs.field(default=2.0, converter=_to_float, validator=_check_settle)
    study: Study = attrs.field(factory=Study, validator=attrs.validators.instance_of(Study))

    @property
    def failed_folder(self) -> Path:
        """Where failed files go (``failed_dir``, or ``<directory>.failed``)."""
        if self.failed_dir is not None:
            return self.failed_dir
        return self.directory.with_name(self.directory.name + ".failed")
