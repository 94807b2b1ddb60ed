"""Deliver files to a PACS: :class:`Sender` (C-ECHO, C-STORE) and its :class:`SendReport`.

A send takes files and folders. DICOM files (recognised by content) are sent as they are, or
as a copy when the ``dicom`` settings' update-tag patterns or the device's character set change
their header, or when the PACS accepts only uncompressed data; other files are converted first
(:class:`~sendtopacs_core.convert.Converter`) with the study given. Every file gets one
:class:`FileOutcome`: the status the PACS answered, in hex and in words, or why nothing was
sent. Nothing counts as sent without a success status.

Examples
--------
>>> from sendtopacs_core import Device, Sender
>>> pacs = Device(name="pacs", ae_title="ORTHANC", host="127.0.0.1", port=4242)
>>> sender = Sender(pacs, calling_ae_title="SENDTOPACS")
>>> report = sender.send(["study/"])  # doctest: +SKIP
>>> report.ok  # doctest: +SKIP
True
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from sendtopacs_core.errors import (
    ConfigError,
    ConversionError,
    DicomNetworkError,
    InvalidValueError,
)
from sendtopacs_core.model import Device, Study
from sendtopacs_core.net._association import echo
from sendtopacs_core.net._files import InvalidDicomFileError, discover, read_dicom_file
from sendtopacs_core.net._outcome import FileOutcome, SendProgress, SendReport
from sendtopacs_core.net._plan import Delivery, plan_associations, send_group
from sendtopacs_core.net._status import SendState
from sendtopacs_core.net.matching import (
    WorklistMatchError,
    dicom_query,
    match_file_names,
    match_one,
)
from sendtopacs_core.net.querier import Querier
from sendtopacs_core.settings import Settings

__all__ = ["FileOutcome", "SendProgress", "SendReport", "SendState", "Sender"]

_LOGGER = logging.getLogger(__name__)


class Sender:
    """Sends files to one device and checks that it answers.

    Parameters
    ----------
    device
        Where to send.
    calling_ae_title
        Our AE title (settings ``main.ae_title``); the PACS must know it.
    settings
        For files converted on the fly (``non_dicom``), the header changes of DICOM files
        (``dicom.update_tags``) and the temporary folder (``main``). Defaults if not given.
    decompress
        Also decode lossy sources when the PACS accepts only uncompressed data (the device's
        ``decompress`` always sends uncompressed).
    querier
        The worklist for automatic matching: with ``non_dicom.parse_file_name`` each non-DICOM
        file's name finds its worklist item (and study); with ``dicom.parse_dicom_for_worklist``
        each DICOM file's header does, and the item fills the copy's empty patient and study
        attributes (all of them with ``dicom.replace_with_worklist``). A file without exactly
        one matching item is not sent, and its outcome lists the candidates.
    """

    def __init__(
        self,
        device: Device,
        *,
        calling_ae_title: str | None = None,
        settings: Settings | None = None,
        decompress: bool = False,
        querier: Querier | None = None,
    ) -> None:
        self.device = device
        self.settings = settings if settings is not None else Settings()
        self.calling_ae_title = calling_ae_title or self.settings.main.ae_title
        self.decompress = decompress
        self.querier = querier

    def echo(self) -> float:
        """C-ECHO the device; return the round trip in seconds.

        Raises
        ------
        DicomNetworkError
            The device cannot be reached, rejects us (the message gives the reason in
            words) or does not answer with success.
        """
        return echo(self.device, self.calling_ae_title)

    def send(
        self,
        items: Iterable[str | os.PathLike[str]],
        *,
        study: Study | None = None,
        progress: SendProgress | None = None,
    ) -> SendReport:
        """Send files and folders; return one outcome per file, in input order.

        Non-DICOM files are converted first with ``study`` (without a study they fail).
        Nothing raises for a single file: a bad file, a refused object or an unreachable
        device are outcomes. The temporary copies are removed at the end unless the
        settings keep them (``main.clean_temp_on_exit`` false).
        """
        main = self.settings.main
        temp = Path(tempfile.mkdtemp(prefix="sendtopacs-send-", dir=main.temp_dir))
        keep = not main.clean_temp_on_exit
        lock = threading.Lock()
        outcomes: dict[tuple[int, int], FileOutcome] = {}

        def record(key: tuple[int, int], outcome: FileOutcome) -> None:
            with lock:
                outcomes[key] = outcome
            # INFO, failures too: they are in the report, which the caller shows or acts on.
            # File names and messages may name the patient: only at DEBUG.
            _LOGGER.info("%s (%s)", outcome.state, outcome.status_text)
            _LOGGER.debug("%s: %s: %s", outcome.source, outcome.state, outcome.message)
            if progress is not None:
                progress(outcome)

        try:
            deliveries = self._deliveries(items, study, temp, record)
            unreachable = self._deliver(deliveries, temp, record)
        finally:
            if not keep:
                shutil.rmtree(temp, ignore_errors=True)
        return SendReport(
            device=self.device.name,
            outcomes=tuple(outcomes[key] for key in sorted(outcomes)),
            unreachable=unreachable,
            kept_temp_dir=temp if keep else None,
        )

    # -- inputs ---------------------------------------------------------------------------------

    def _deliveries(
        self,
        items: Iterable[str | os.PathLike[str]],
        study: Study | None,
        temp: Path,
        record: Callable[[tuple[int, int], FileOutcome], None],
    ) -> list[Delivery]:
        """Read every DICOM input's header and convert the others; failures are recorded."""
        deliveries: list[Delivery] = []
        to_convert: list[tuple[int, Path]] = []
        for index, found in enumerate(discover(items)):
            if isinstance(found, OSError):
                name = Path(str(found.filename or "?"))
                record((index, 0), _failed(name, f"cannot read: {found.strerror or found}"))
            elif not found.is_dicom:
                to_convert.append((index, found.path))
            else:
                delivery = self._dicom_delivery(index, found.path, record)
                if delivery is not None:
                    deliveries.append(delivery)
        if to_convert:
            deliveries += self._convert(to_convert, study, temp, record)
        deliveries.sort(key=lambda delivery: (delivery.index, delivery.page))
        return deliveries

    def _dicom_delivery(
        self, index: int, path: Path, record: Callable[[tuple[int, int], FileOutcome], None]
    ) -> Delivery | None:
        try:
            dicom = read_dicom_file(path)
        except (InvalidDicomFileError, OSError) as exc:
            record((index, 0), _failed(path, f"not sent: {exc}"))
            return None
        if dicom.is_dicomdir:
            record(
                (index, 0), FileOutcome(source=path, state=SendState.SKIPPED, message="DICOMDIR")
            )
            return None
        item = None
        if self.querier is not None and self.settings.dicom.parse_dicom_for_worklist:
            try:
                query = dicom_query(dicom.header, self.querier.device)
                item = match_one(self.querier, query, path.name)
            except (WorklistMatchError, DicomNetworkError, InvalidValueError) as exc:
                record((index, 0), _failed(path, f"not sent: {exc}"))
                return None
        return Delivery(
            index=index,
            source=path,
            dicom=dicom,
            patterns=self.settings.dicom.update_tags,
            charset=self.device.charset,
            worklist_item=item,
            replace_with_worklist=self.settings.dicom.replace_with_worklist,
        )

    def _convert(
        self,
        inputs: Sequence[tuple[int, Path]],
        study: Study | None,
        temp: Path,
        record: Callable[[tuple[int, int], FileOutcome], None],
    ) -> list[Delivery]:
        if self.querier is not None and self.settings.non_dicom.parse_file_name:
            indexes = {path: index for index, path in inputs}
            groups, unmatched = match_file_names(
                self.querier,
                [path for _, path in inputs],
                self.settings.non_dicom.file_name_pattern,
            )
            for path, why in unmatched.items():
                record((indexes[path], 0), _failed(path, f"not converted: {why}"))
            deliveries: list[Delivery] = []
            for number, (matched, members) in enumerate(groups.items()):
                pairs = [(indexes[path], path) for path in members]
                deliveries += self._convert_for(
                    pairs, matched, temp / f"converted-{number}", record
                )
            return deliveries
        if study is None:
            for index, path in inputs:
                record(
                    (index, 0),
                    _failed(path, "not DICOM: converting it needs patient and study data"),
                )
            return []
        return self._convert_for(inputs, study, temp / "converted", record)

    def _convert_for(
        self,
        inputs: Sequence[tuple[int, Path]],
        study: Study,
        out_dir: Path,
        record: Callable[[tuple[int, int], FileOutcome], None],
    ) -> list[Delivery]:
        from sendtopacs_core.convert import Converter  # noqa: PLC0415 (loads media libraries)

        indexes = {path: index for index, path in inputs}
        try:
            report = Converter(self.settings).convert(
                [path for _, path in inputs], study, out_dir=out_dir
            )
        except (ConfigError, ConversionError, InvalidValueError) as exc:
            # worklist-only, no output folder, or a typed value not among the offered ones
            for index, path in inputs:
                record((index, 0), _failed(path, f"not converted: {exc}"))
            return []
        for failure in report.failures:
            record((indexes[failure.source], 0), _failed(failure.source, str(failure.error)))
        deliveries = []
        for converted in report.files:
            try:
                dicom = read_dicom_file(converted.path)
            except (InvalidDicomFileError, OSError) as exc:  # pragma: no cover - our own file
                record(
                    (indexes[converted.source], converted.page), _failed(converted.source, str(exc))
                )
                continue
            deliveries.append(
                Delivery(
                    index=indexes[converted.source],
                    source=converted.source,
                    dicom=dicom,
                    patterns=(),
                    charset=self.device.charset,
                    converted=True,
                    page=converted.page,
                )
            )
        return deliveries

    # -- sending --------------------------------------------------------------------------------

    def _deliver(
        self,
        deliveries: list[Delivery],
        temp: Path,
        record: Callable[[tuple[int, int], FileOutcome], None],
    ) -> bool:
        """Send every delivery; return whether some could not reach the device."""
        groups = plan_associations(
            deliveries,
            device=self.device,
            decompress_lossy=self.decompress or self.device.decompress,
        )
        workers = min(self.device.parallel_associations, len(groups))
        unreachable = threading.Event()
        pending = list(enumerate(groups))
        take = threading.Lock()

        def work() -> None:
            while True:
                with take:
                    if not pending:
                        return
                    number, group = pending.pop(0)
                scratch = temp / f"copies-{number}"
                scratch.mkdir(exist_ok=True)
                if not send_group(
                    group,
                    device=self.device,
                    calling_ae_title=self.calling_ae_title,
                    scratch=scratch,
                    clean_each=self.settings.main.clean_unused_temp,
                    record=lambda delivery, outcome: record(
                        (delivery.index, delivery.page), outcome
                    ),
                ):
                    unreachable.set()

        if workers <= 1:
            work()
        else:
            threads = [
                threading.Thread(target=work, name=f"sendtopacs-send-{n}") for n in range(workers)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return unreachable.is_set()


def _failed(path: Path, message: str) -> FileOutcome:
    return FileOutcome(source=path, state=SendState.FAILED, message=message)
