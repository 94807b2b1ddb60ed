"""Which presentation contexts a batch needs, how files share associations, and sending them.

Every SOP class of the batch is offered in Explicit and in Implicit VR Little Endian (each its
own context, so that the PACS accepts each separately and no file is re-encoded needlessly),
plus each compressed transfer syntax its files are in. A file goes in its own syntax when the
PACS accepts it; otherwise uncompressed, decoding lossless sources (and lossy ones when asked);
otherwise it fails with the syntaxes offered and accepted. Files are packed into associations
of at most 128 contexts and ``files_per_association`` files.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import attrs
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.association import Association

from sendtopacs_core.errors import (
    AssociationAbortedError,
    AssociationFailedError,
    ContextNotAcceptedError,
    InvalidValueError,
)
from sendtopacs_core.model import MAX_CONTEXTS, Device, TagPattern
from sendtopacs_core.net._association import (
    Context,
    StoredFile,
    open_association,
    paused_reactor,
    peer_name,
    send_file,
)
from sendtopacs_core.net._files import (
    DicomFile,
    InvalidDicomFileError,
    first_line,
    quiet_pydicom,
    read_dicom_file,
)
from sendtopacs_core.net._outcome import FileOutcome
from sendtopacs_core.net._prepare import (
    UNCOMPRESSED,
    can_decode,
    header_changes,
    is_lossy,
    is_uncompressed,
    write_copy,
)
from sendtopacs_core.net._status import SendState, classify, status_meaning
from sendtopacs_core.net.matching import fill_from_item
from sendtopacs_core.net.querier import WorklistItem

__all__ = ["Delivery", "Group", "plan_associations", "send_group"]

_LOGGER = logging.getLogger(__name__)
_NO_ANSWER: Final = "no answer to the C-STORE (the association was aborted or timed out)"


@attrs.frozen(kw_only=True)
class Delivery:
    """One DICOM file to send, with what must change in its header."""

    index: int
    source: Path
    dicom: DicomFile
    patterns: tuple[TagPattern, ...]
    charset: str | None
    converted: bool = False
    page: int = 0
    worklist_item: WorklistItem | None = None
    replace_with_worklist: bool = False


@attrs.frozen(kw_only=True)
class Group:
    """Files sent over one association (reopened if the peer aborts it)."""

    deliveries: tuple[Delivery, ...]
    contexts: tuple[Context, ...]
    decompress_lossy: bool
    always_uncompressed: bool


def _contexts(delivery: Delivery, always_uncompressed: bool) -> list[Context]:
    sop = delivery.dicom.sop_class_uid
    syntax = delivery.dicom.transfer_syntax_uid
    contexts = [Context(sop, (uncompressed,)) for uncompressed in UNCOMPRESSED]
    decodable = can_decode(syntax)
    if syntax not in UNCOMPRESSED and not (always_uncompressed and decodable):
        contexts.append(Context(sop, (syntax,)))
    return contexts


def plan_associations(
    deliveries: Sequence[Delivery], *, device: Device, decompress_lossy: bool
) -> list[Group]:
    """Pack ``deliveries`` (in order) into groups of at most 128 contexts and N files."""
    limit = device.files_per_association
    if not limit and device.parallel_associations > 1 and deliveries:
        # Parallel associations need several groups: share the files out evenly.
        limit = -(-len(deliveries) // device.parallel_associations)
    groups: list[Group] = []
    current: list[Delivery] = []
    contexts: dict[Context, None] = {}

    def close() -> None:
        if current:
            groups.append(
                Group(
                    deliveries=tuple(current),
                    contexts=tuple(contexts),
                    decompress_lossy=decompress_lossy,
                    always_uncompressed=device.decompress,
                )
            )
        current.clear()
        contexts.clear()

    for delivery in deliveries:
        needed = _contexts(delivery, device.decompress)
        new = [context for context in needed if context not in contexts]
        if (limit and len(current) >= limit) or len(contexts) + len(new) > MAX_CONTEXTS:
            close()
        current.append(delivery)
        contexts.update(dict.fromkeys(needed))
    close()
    return groups


@attrs.frozen
class _Choice:
    transfer_syntax: str | None
    problem: str = ""


def _choose(delivery: Delivery, accepted: set[tuple[str, str]], group: Group) -> _Choice:
    sop = delivery.dicom.sop_class_uid
    syntax = delivery.dicom.transfer_syntax_uid
    decodable = can_decode(syntax)
    if (sop, syntax) in accepted and not (group.always_uncompressed and decodable):
        return _Choice(syntax)
    for uncompressed in UNCOMPRESSED:
        if (sop, uncompressed) not in accepted:
            continue
        if is_uncompressed(syntax) or (decodable and not is_lossy(syntax)):
            return _Choice(uncompressed)
        if decodable and (group.decompress_lossy or group.always_uncompressed):
            return _Choice(uncompressed)
        if decodable:
            return _Choice(
                None,
                f"{_name(syntax)} was not accepted for {_name(sop)} (accepted: "
                f"{_accepted_names(accepted, sop)}); the source is lossy: decompressing it "
                "needs --decompress or the device's decompress",
            )
    offered = [_name(syntax)] if syntax in UNCOMPRESSED else [_name(syntax), "uncompressed"]
    if not decodable:
        offered = [_name(syntax)]
    return _Choice(
        None,
        f"no accepted presentation context for {_name(sop)}: offered "
        f"{' or '.join(offered)}; accepted {_accepted_names(accepted, sop)}",
    )


def _name(uid: str) -> str:
    name = UID(uid).name
    return name if name and name != uid else uid


def _accepted_names(accepted: set[tuple[str, str]], sop: str) -> str:
    names = sorted(_name(syntax) for abstract, syntax in accepted if abstract == sop)
    return ", ".join(names) if names else "nothing for this SOP class"


# -- sending -------------------------------------------------------------------------------------

#: Receives each delivery's outcome: ``(delivery, outcome)``.
Record = Callable[[Delivery, FileOutcome], None]


def send_group(
    group: Group,
    *,
    device: Device,
    calling_ae_title: str,
    scratch: Path,
    clean_each: bool,
    record: Record,
) -> bool:
    """Send a group's files; return False when the device could not be reached."""
    remaining = list(group.deliveries)
    message_id = 0
    while remaining:
        try:
            with (
                open_association(device, calling_ae_title, group.contexts) as assoc,
                paused_reactor(assoc),
            ):
                accepted = {
                    (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
                    for cx in assoc.accepted_contexts
                }
                sent_any = False
                while remaining and assoc.is_established:
                    delivery = remaining.pop(0)
                    message_id = message_id % 65535 + 1
                    outcome = _send_one(assoc, delivery, accepted, group, scratch, message_id)
                    if clean_each:
                        for leftover in scratch.iterdir():
                            leftover.unlink(missing_ok=True)
                    record(delivery, outcome)
                    sent_any = True
                if not sent_any:
                    raise AssociationAbortedError(
                        "the association was aborted before anything was sent",
                        peer=peer_name(device),
                    )
        except (AssociationFailedError, ContextNotAcceptedError) as exc:
            # No context accepted: the PACS does not take these SOP classes from us (permanent).
            transient = isinstance(exc, AssociationFailedError) and exc.transient
            state = SendState.RETRYABLE if transient else SendState.FAILED
            for delivery in remaining:
                record(
                    delivery,
                    FileOutcome(
                        source=delivery.source,
                        state=state,
                        message=str(exc),
                        sop_class_uid=delivery.dicom.sop_class_uid,
                        sop_instance_uid=delivery.dicom.sop_instance_uid,
                        converted=delivery.converted,
                    ),
                )
            return False
    return True


def _send_one(  # noqa: PLR0917 - one call site
    assoc: Association,
    delivery: Delivery,
    accepted: set[tuple[str, str]],
    group: Group,
    scratch: Path,
    message_id: int,
) -> FileOutcome:
    dicom = delivery.dicom
    base = FileOutcome(
        source=delivery.source,
        state=SendState.FAILED,
        message="",
        sop_class_uid=dicom.sop_class_uid,
        sop_instance_uid=dicom.sop_instance_uid,
        converted=delivery.converted,
    )
    choice = _choose(delivery, accepted, group)
    if choice.transfer_syntax is None:
        return attrs.evolve(base, state=SendState.FAILED, message=choice.problem)
    prepared = _prepare(delivery, choice.transfer_syntax, scratch / f"{message_id}.dcm")
    if isinstance(prepared, str):
        return attrs.evolve(base, state=SendState.FAILED, message=prepared)
    path, stored, decoded = prepared
    syntax = stored.transfer_syntax_uid
    base = attrs.evolve(
        base, sop_class_uid=stored.sop_class_uid, sop_instance_uid=stored.sop_instance_uid
    )
    try:
        result = send_file(assoc, path, message_id, stored)
    except (ValueError, RuntimeError, AttributeError, OSError) as exc:
        return attrs.evolve(base, state=SendState.RETRYABLE, message=f"not sent: {exc}")
    if result.status is None:
        return attrs.evolve(
            base,
            state=SendState.RETRYABLE,
            message=result.problem or _NO_ANSWER,
            transfer_syntax_uid=syntax,
        )
    state = classify(result.status)
    message = f"0x{result.status:04X} {status_meaning(result.status)}"
    if result.error_comment:
        message += f": {result.error_comment}"
    if decoded:
        message += " (decompressed: the PACS did not accept the compressed data)"
    _LOGGER.debug("C-STORE %s: %s", stored.sop_instance_uid, message)
    return attrs.evolve(
        base,
        state=state,
        message=message,
        status=result.status,
        error_comment=result.error_comment,
        transfer_syntax_uid=syntax,
        decompressed=decoded,
    )


def _prepare(delivery: Delivery, syntax: str, target: Path) -> tuple[Path, StoredFile, bool] | str:
    """The file to send (the source, or a copy at ``target``), its UIDs and whether it was
    decoded; or why it cannot be sent. Whatever preparing one file raises (pydicom, numpy,
    the pixel decoders) is that file's failure, with the cause in words."""
    dicom = delivery.dicom
    try:
        with quiet_pydicom():  # decoding values may warn, quoting them
            header = _changed_header(delivery)
    except InvalidValueError as exc:
        return f"header not changed: {exc}"
    except Exception as exc:  # one file's failure domain: pydicom, a character set...
        return f"header not changed: {_cause(exc)}"
    stored = StoredFile(
        dicom.sop_class_uid,
        dicom.sop_instance_uid,
        dicom.transfer_syntax_uid,
        data_offset=dicom.data_offset,
    )
    if header is None and syntax == dicom.transfer_syntax_uid and not dicom.needs_rewrite:
        return dicom.path, stored, False
    try:
        decoded = write_copy(dicom, target, header=header, transfer_syntax=syntax)
    except Exception as exc:  # pydicom, numpy, pylibjpeg, openjpeg, rle: this file only
        return f"cannot prepare the copy in {_name(syntax)}: {_cause(exc)}"
    try:
        checked = read_dicom_file(target, exact_pixels=True)  # checked like what was given
    except (InvalidDicomFileError, OSError) as exc:
        return f"not sent: the copy prepared in {_name(syntax)} is wrong: {exc}"
    stored = StoredFile(
        checked.sop_class_uid,
        checked.sop_instance_uid,
        checked.transfer_syntax_uid,
        data_offset=checked.data_offset,
    )
    return target, stored, decoded


def _cause(exc: BaseException) -> str:
    """An exception in words: its first line (no traceback), and its kind if it says little."""
    text = first_line(exc)
    return text if len(text) > 12 else f"{type(exc).__name__}: {text}"


def _changed_header(delivery: Delivery) -> Dataset | None:
    item = delivery.worklist_item
    if not delivery.patterns and delivery.charset is None and item is None:
        return None
    header = copy.deepcopy(delivery.dicom.header)
    changed = False
    if item is not None:
        changed = fill_from_item(header, item, replace=delivery.replace_with_worklist)
    changes = header_changes(header, delivery.patterns, delivery.charset)
    return header if changes or changed else None
