"""Keep DICOM data set dumps (patient data) out of every log above DEBUG.

pynetdicom writes each C-FIND request and answer identifier at INFO, one log record per
element (``(0010,0010) PN [DOE^JANE] # 1 PatientName``), and pydicom prints data sets the
same way (``(0010,0010) Patient's Name PN: 'DOE^JANE'``). Those lines are patient data.

:class:`PatientDataFilter` turns such a record into a DEBUG record, so it reaches only a
handler that shows DEBUG (``sendtopacs -vv``), and leaves every other record alone. The core
attaches one to pynetdicom's and pydicom's loggers when it is imported: nothing for an
application to remember. An application can attach its own to a handler, giving the
handler's level, for records of other loggers.

The C-FIND identifiers are formatted by pynetdicom only when a log shows them: before each
search the core sets pynetdicom's ``LOG_REQUEST_IDENTIFIERS`` and ``LOG_RESPONSE_IDENTIFIERS``
to whether pynetdicom's logger is enabled for DEBUG (formatting 10,000 answers costs about
5 s; ``sendtopacs_core.net._association.sync_identifier_logging``).
"""

from __future__ import annotations

import logging
import re
from typing import Final

__all__ = ["PatientDataFilter", "install", "is_dump"]

#: A line that starts with a DICOM tag, ``(gggg,eeee)``: an element of a data set dump.
_ELEMENT_LINE: Final = re.compile(r"^\s*\([0-9A-Fa-f]{4},\s?[0-9A-Fa-f]{4}\)", re.MULTILINE)
#: The headings and item markers of pynetdicom's identifier dumps.
_DUMP_HEADINGS: Final = (
    "# Request Identifier",
    "# Response Identifier",
    "# DICOM Dataset",
    "(Sequence item #",
    "Find SCP Request Identifier",
    "Find SCP Response Identifier",
)
#: pydicom's warning about an invalid value quotes the value (``Invalid value for VR PN: 'X'``).
_VALUE_ECHO: Final = re.compile(r"Invalid value for VR [A-Z]{2}: ")
#: The loggers of the libraries that dump data sets (children included), and the logger of
#: Python warnings routed into logging (``logging.captureWarnings``), where pydicom's value
#: warnings arrive.
_DUMPING_LOGGERS: Final = ("pynetdicom", "pydicom", "py.warnings")


class PatientDataFilter(logging.Filter):
    """A :class:`logging.Filter` that makes data set dumps DEBUG records.

    A record above DEBUG whose message is an element of a data set dump (a line starting with
    a DICOM tag ``(gggg,eeee)``, or a heading of pynetdicom's identifier dumps), or pydicom's
    warning quoting an invalid value, becomes a DEBUG record; every other record passes
    unchanged.

    Attached to a logger, the demoted record then reaches only the handlers that show DEBUG.
    Attached to a handler (whose level was checked before its filters run), give the
    handler's level: a demoted record below it is dropped.

    Parameters
    ----------
    level
        The level below which a demoted record is dropped (``logging.NOTSET``: never).
    """

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        """Demote a dump record to DEBUG; ``False`` when that puts it below ``level``."""
        if record.levelno > logging.DEBUG and is_dump(record):
            record.levelno = logging.DEBUG
            record.levelname = logging.getLevelName(logging.DEBUG)
        return record.levelno >= self.level


def is_dump(record: logging.LogRecord) -> bool:
    """Whether ``record`` is (a line of) a data set dump."""
    try:
        text = record.getMessage()
    except (TypeError, ValueError):  # a record whose arguments do not fit its format
        text = str(record.msg)
    if _ELEMENT_LINE.search(text) or _VALUE_ECHO.search(text):
        return True
    stripped = text.lstrip()
    return any(stripped.startswith(heading) for heading in _DUMP_HEADINGS)


_INSTALLED: Final = PatientDataFilter()


def install() -> None:
    """Attach the core's filter to pynetdicom's and pydicom's loggers (idempotent).

    A logger's filters see only the records logged on that logger, so every logger of the
    two libraries that exists is given one (they exist once the libraries are imported).
    """
    manager = logging.Logger.manager
    names = [
        name
        for name in list(manager.loggerDict)
        if any(name == root or name.startswith(root + ".") for root in _DUMPING_LOGGERS)
    ]
    for name in {*names, *_DUMPING_LOGGERS}:
        logger = logging.getLogger(name)
        if _INSTALLED not in logger.filters:
            logger.addFilter(_INSTALLED)
