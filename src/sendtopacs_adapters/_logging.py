"""Logging set-up for the command line: one stream handler on stderr."""

from __future__ import annotations

import logging
import warnings

from sendtopacs_core import PatientDataFilter


def configure(verbosity: int) -> None:
    """``-q`` -> errors only, default -> warnings, ``-v`` -> info, ``-vv`` / ``--debug`` -> debug.

    Patient data is only logged at DEBUG, so ``-vv`` output must be handled as patient data.
    The handler has the level too, and a :class:`~sendtopacs_core.PatientDataFilter`: the core
    turns pynetdicom's and pydicom's data set dumps into DEBUG records, and the handler drops
    them below ``-vv`` whichever logger they come from.
    """
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    if verbosity < -1:
        level = logging.CRITICAL
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_sendtopacs", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    handler.addFilter(PatientDataFilter(level))
    handler._sendtopacs = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Python warnings (pydicom's quote invalid values: patient data) go through the handler
    # and its filter instead of straight to stderr.
    logging.captureWarnings(True)
    # pypdf reports every recoverable oddity of a PDF at WARNING; they are not ours to show.
    logging.getLogger("pypdf").setLevel(max(level, logging.ERROR))
    # pynetdicom logs each refused association or connection at ERROR; the commands report
    # them in their own words, so its messages show only with -v.
    logging.getLogger("pynetdicom").setLevel(level if verbosity >= 1 else logging.CRITICAL)
    # pydicom and the pixel decoders log each failing plugin with its traceback, and warn of
    # the oddities of a file (quoting its values): the outcome says why a file failed, so
    # theirs show only with -v.
    for name in ("pydicom", "pylibjpeg", "openjpeg", "rle"):
        logging.getLogger(name).setLevel(level if verbosity >= 1 else logging.CRITICAL)
    if verbosity < 1:  # the same warnings, raised by pydicom (or in pynetdicom's threads)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"(pydicom|pynetdicom)\b")
