"""Every documented ``Raises`` of the public API, checked against real peers (STYLE.md 8).

``Raises`` is a contract: each entry of each public class, method and function in
``sendtopacs_core.__all__`` has a test here that makes it happen with ``pytest.raises(...,
match=...)``, and :func:`test_every_documented_raises_is_checked` fails when an entry has no
test or a test names an entry that is no longer documented.

Peers: a closed port, the in-process ``StorageSCP`` and ``WorklistSCP`` (rejecting, hung),
small pynetdicom SCPs that abort a C-ECHO, answer it with a failure or offer no Verification,
and DCMTK's ``storescp``.
"""

from __future__ import annotations

import builtins
import datetime as dt
import inspect
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

import sendtopacs_core
from sendtopacs_core import (
    Assignment,
    AssociationAbortedError,
    AssociationFailedError,
    AssociationRejectedError,
    ConfigError,
    ContextNotAcceptedError,
    ConversionError,
    Converter,
    DicomNetworkError,
    InvalidValueError,
    Journal,
    NonDicomSettings,
    PeerUnreachableError,
    Querier,
    QueryFailedError,
    QueryLevel,
    QueryResult,
    Sender,
    Settings,
    StudyQuery,
    Timeouts,
    TlsOptions,
    WorklistDevice,
    WorklistItem,
    WorklistQuery,
)
from sendtopacs_core.testing import Rejection, StorageSCP
from sendtopacs_core.testing.plugin import StorageSCPFactory, WorklistSCPFactory
from tests._netpeers import StoreSCPFactory, device_to, free_port, refused_socket_leak_ignored

#: (qualified name, exception name) -> the test that checks it.
CHECKS: Final[dict[tuple[str, str], str]] = {}

_SECTION = re.compile(r"^Raises\n-+\n(?P<body>.*?)(?=^\S[^\n]*\n-+\n|\Z)", re.S | re.M)


def checks(*entries: tuple[str, str]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a test as the check of documented ``(qualname, exception)`` entries."""

    def register(test: Callable[..., None]) -> Callable[..., None]:
        for entry in entries:
            assert entry not in CHECKS, entry
            CHECKS[entry] = test.__name__
        return test

    return register


def _raises(doc: str | None) -> list[str]:
    match = _SECTION.search(inspect.cleandoc(doc or ""))
    if match is None:
        return []
    names: list[str] = []
    for line in match["body"].splitlines():
        if line and not line.startswith(" "):
            names += [name.strip() for name in line.split(",")]
    return names


def _documented() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for name in sendtopacs_core.__all__:
        obj = getattr(sendtopacs_core, name)
        if inspect.isclass(obj):
            found |= {(name, exc) for exc in _raises(vars(obj).get("__doc__"))}
            for member_name, member in vars(obj).items():
                if member_name.startswith("_"):
                    continue
                function = getattr(member, "__func__", None) or getattr(member, "fget", member)
                for exc in _raises(getattr(function, "__doc__", None)):
                    found.add((f"{name}.{member_name}", exc))
        elif callable(obj):
            found |= {(name, exc) for exc in _raises(obj.__doc__)}
    return found


def test_every_documented_raises_is_checked() -> None:
    documented = _documented()
    assert documented, "no Raises section found: the parser is broken"
    assert ("Querier.find_worklist", "QueryFailedError") in documented
    assert sorted(documented - set(CHECKS)) == [], "documented, not checked"
    assert sorted(set(CHECKS) - documented) == [], "checked, not documented"
    for name, exc in documented:
        assert hasattr(sendtopacs_core, exc) or hasattr(builtins, exc), f"{name}: {exc}?"


def test_querier_find_documents_no_value_error() -> None:
    """It used to document a ValueError for the worklist model; it searches Study Root."""
    assert "ValueError" not in _raises(Querier.find.__doc__)


# -- peers -----------------------------------------------------------------------------------


def _worklist_device(port: int, **options: Any) -> WorklistDevice:
    options.setdefault("use_today", False)
    return WorklistDevice(name="mwl", ae_title="MWL", host="127.0.0.1", port=port, **options)


@contextmanager
def _echo_scp(
    *, on_echo: Callable[[Any], int] | None = None, verification: bool = True
) -> Iterator[int]:
    """A pynetdicom SCP on 127.0.0.1 (Verification unless not, CT storage); yields its port."""
    ae = AE(ae_title="ECHOSCP")
    if verification:
        ae.add_supported_context("1.2.840.10008.1.1")
    ae.add_supported_context(CTImageStorage)
    handlers: list[Any] = [] if on_echo is None else [(evt.EVT_C_ECHO, on_echo)]
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)
    assert server is not None
    try:
        yield port
    finally:
        server.shutdown()


def _abort(event: Any) -> int:
    event.assoc.abort()
    return 0x0000  # never sent: the association is gone


# -- Sender.echo -----------------------------------------------------------------------------


@refused_socket_leak_ignored()
@checks(("Sender.echo", "PeerUnreachableError"))
def test_echo_closed_port_is_unreachable() -> None:
    port = free_port()
    with pytest.raises(PeerUnreachableError, match="connection refused") as info:
        Sender(device_to("NOBODY", port, timeouts=Timeouts(connect_s=2))).echo()
    assert info.value.peer == f"NOBODY@127.0.0.1:{port}"
    assert info.value.transient
    assert info.value.rejection is None
    assert isinstance(info.value, AssociationFailedError)


@checks(("Sender.echo", "AssociationRejectedError"))
def test_echo_rejected(storage_scp_factory: StorageSCPFactory) -> None:
    scp = storage_scp_factory(reject=Rejection(result=1, source=1, reason=3))
    with pytest.raises(
        AssociationRejectedError, match=r"association rejected by .*calling AE title not recognised"
    ) as info:
        Sender(device_to(scp.ae_title, scp.port)).echo()
    assert info.value.rejection == (1, 1, 3)
    assert not info.value.transient
    assert info.value.peer == f"{scp.ae_title}@127.0.0.1:{scp.port}"


@checks(("Sender.echo", "AssociationAbortedError"))
def test_echo_aborted() -> None:
    with (
        _echo_scp(on_echo=_abort) as port,
        pytest.raises(AssociationAbortedError, match="instead of answering the C-ECHO") as info,
    ):
        Sender(device_to("ECHOSCP", port, timeouts=Timeouts(dimse_s=5))).echo()
    assert info.value.transient
    assert info.value.peer == f"ECHOSCP@127.0.0.1:{port}"


@checks(("Sender.echo", "ContextNotAcceptedError"))
def test_echo_without_verification() -> None:
    with (
        _echo_scp(verification=False) as port,
        pytest.raises(ContextNotAcceptedError, match=r"accepted none .*Verification") as info,
    ):
        Sender(device_to("ECHOSCP", port)).echo()
    assert info.value.sop_class_uids == ("1.2.840.10008.1.1",)
    assert not isinstance(info.value, AssociationFailedError)


@checks(("Sender.echo", "DicomNetworkError"))
def test_echo_failure_status_and_unreadable_tls_files(tmp_path: Path) -> None:
    with (
        _echo_scp(on_echo=lambda _event: 0x0211) as port,
        pytest.raises(DicomNetworkError, match="C-ECHO with status 0x0211") as info,
    ):
        Sender(device_to("ECHOSCP", port)).echo()
    assert type(info.value) is DicomNetworkError
    assert info.value.peer == f"ECHOSCP@127.0.0.1:{port}"
    tls = TlsOptions(enabled=True, ca_file=tmp_path / "missing-ca.pem")
    with pytest.raises(DicomNetworkError, match="cannot load the TLS files"):
        Sender(device_to("ECHOSCP", free_port(), tls=tls)).echo()


# -- Querier ---------------------------------------------------------------------------------


@refused_socket_leak_ignored()
@checks(
    ("Querier.find_worklist", "PeerUnreachableError"),
    ("Querier.find", "PeerUnreachableError"),
)
def test_query_closed_port_is_unreachable() -> None:
    querier = Querier(_worklist_device(free_port(), timeouts=Timeouts(connect_s=2)))
    with pytest.raises(PeerUnreachableError, match="connection refused"):
        querier.find_worklist()
    with pytest.raises(PeerUnreachableError, match="connection refused"):
        querier.find(StudyQuery(patient_id="P1"))


@checks(
    ("Querier.find_worklist", "AssociationRejectedError"),
    ("Querier.find", "AssociationRejectedError"),
)
def test_query_rejected(worklist_scp_factory: WorklistSCPFactory) -> None:
    scp = worklist_scp_factory([], reject=Rejection(result=2, source=3, reason=1))
    querier = Querier(_worklist_device(scp.port))
    with pytest.raises(AssociationRejectedError, match="temporary congestion") as info:
        querier.find_worklist()
    assert info.value.rejection == (2, 3, 1)
    assert info.value.transient
    with pytest.raises(AssociationRejectedError, match="temporary congestion"):
        querier.find()


@checks(
    ("Querier.find_worklist", "AssociationAbortedError"),
    ("Querier.find", "AssociationAbortedError"),
)
def test_query_hung_server_is_aborted(worklist_scp_factory: WorklistSCPFactory) -> None:
    scp = worklist_scp_factory([], never_answer=True)
    querier = Querier(_worklist_device(scp.port, timeouts=Timeouts(dimse_s=1)))
    started = time.monotonic()
    with pytest.raises(AssociationAbortedError, match="stopped answering the search") as info:
        querier.find_worklist()
    assert info.value.peer == f"MWL@127.0.0.1:{scp.port}"
    with pytest.raises(AssociationAbortedError, match="stopped answering the search"):
        querier.find()
    assert time.monotonic() - started < 20


@checks(
    ("Querier.find_worklist", "ContextNotAcceptedError"),
    ("Querier.find", "ContextNotAcceptedError"),
)
def test_query_of_a_storage_only_peer(storage_scp: StorageSCP) -> None:
    querier = Querier(_worklist_device(storage_scp.port))
    with pytest.raises(ContextNotAcceptedError, match=r"accepted none .*Worklist") as info:
        querier.find_worklist()
    assert info.value.sop_class_uids == ("1.2.840.10008.5.1.4.31",)
    with pytest.raises(ContextNotAcceptedError, match="Study Root") as info:
        querier.find()
    assert info.value.sop_class_uids == ("1.2.840.10008.5.1.4.1.2.2.1",)


def test_query_of_dcmtk_storescp_is_context_not_accepted(
    dcmtk_storescp_factory: StoreSCPFactory,
) -> None:
    """DCMTK's storescp offers storage and Verification only."""
    scp = dcmtk_storescp_factory()
    with pytest.raises(ContextNotAcceptedError, match="accepted none"):
        Querier(_worklist_device(scp.port)).find_worklist()


@checks(
    ("Querier.find_worklist", "QueryFailedError"),
    ("Querier.find", "QueryFailedError"),
)
@pytest.mark.parametrize(
    ("status", "words"),
    [
        (0xC001, "Unable to Process"),
        (0xA700, "Refused: Out of Resources"),
        (0x0122, "Refused: SOP Class Not Supported"),
    ],
)
def test_query_failure_status(
    worklist_scp_factory: WorklistSCPFactory, status: int, words: str
) -> None:
    scp = worklist_scp_factory([], failure_status=status)
    querier = Querier(_worklist_device(scp.port))
    with pytest.raises(QueryFailedError, match=f"with 0x{status:04X} {words}") as info:
        querier.find_worklist()
    assert info.value.status == status
    assert info.value.transient is (status == 0xA700)  # out of resources: may pass later
    assert info.value.peer == f"MWL@127.0.0.1:{scp.port}"
    with pytest.raises(QueryFailedError, match=f"0x{status:04X}") as info:
        querier.find(StudyQuery(patient_id="P1"), level=QueryLevel.PATIENT)
    assert info.value.status == status


@checks(
    ("Querier.find_worklist", "InvalidValueError"),
    ("Querier.find", "InvalidValueError"),
    ("Querier.worklist_identifier", "InvalidValueError"),
)
def test_query_invalid_keys_are_refused_before_connecting() -> None:
    querier = Querier(_worklist_device(free_port()))  # nothing listens: nothing is sent
    with pytest.raises(InvalidValueError, match="invalid date '20241345'"):
        querier.worklist_identifier(WorklistQuery(date="20241345"))
    with pytest.raises(InvalidValueError, match="range ends before it starts"):
        querier.find_worklist(WorklistQuery(date="20240201-20240101"))
    with pytest.raises(InvalidValueError, match="invalid date '2024-01'"):
        querier.find(StudyQuery(study_date="2024-01"))


@checks(
    ("WorklistItem.to_study", "InvalidValueError"), ("QueryResult.to_study", "InvalidValueError")
)
def test_server_values_invalid_for_a_study() -> None:
    answer = Dataset()
    answer.PatientSex = "Q"  # CS with the defined terms M, F, O
    with pytest.raises(InvalidValueError, match="invalid patient_sex 'Q': expected M, F or O"):
        WorklistItem.from_identifier(answer).to_study()
    with pytest.raises(InvalidValueError, match="invalid patient_sex 'Q'"):
        QueryResult.from_identifier(answer, QueryLevel.STUDY).to_study()


# -- Converter, Settings, Journal ------------------------------------------------------------


@checks(("Converter", "ValueError"))
def test_converter_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="workers must be at least 1"):
        Converter(workers=0)


@checks(("Converter.convert", "ConversionError"), ("Converter.convert", "ConfigError"))
def test_convert_refusals(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"")
    with pytest.raises(ConversionError, match="cannot create the output folder") as info:
        Converter().convert([photo], out_dir=blocker / "out")
    assert info.value.path == blocker / "out"
    only = Settings(non_dicom=NonDicomSettings(worklist_only=True))
    with pytest.raises(ConfigError, match="worklist_only is on"):
        Converter(only).convert([photo], out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@checks(("Settings.device", "ConfigError"), ("Settings.worklist_device", "ConfigError"))
def test_settings_unknown_device() -> None:
    with pytest.raises(ConfigError, match="no device named 'nope'"):
        Settings().device("nope")
    with pytest.raises(ConfigError, match="no worklist device named 'nope'"):
        Settings().worklist_device("nope")


@checks(("Settings.load", "ConfigError"), ("Settings.from_dict", "ConfigError"))
def test_settings_invalid(tmp_path: Path) -> None:
    broken = tmp_path / "settings.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid JSON at line 1") as info:
        Settings.load(broken)
    assert info.value.path == broken
    with pytest.raises(ConfigError, match="cannot read the settings file"):
        Settings.load(tmp_path)  # a folder
    assert Settings.load(tmp_path / "missing.json") == Settings()  # missing: the defaults
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        Settings.from_dict({"bogus": 1})


@checks(("Settings.dump", "ConfigError"))
def test_settings_dump_where_no_folder_can_be(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot write the settings file"):
        Settings().dump(blocker / "settings.json")


@checks(("Journal", "ConfigError"))
def test_journal_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match="unusable journal"):
        Journal(path)


@pytest.fixture
def journal() -> Iterator[Journal]:
    with Journal.in_memory() as opened:
        yield opened


@checks(
    ("Journal.seen", "ValueError"),
    ("Journal.due", "ValueError"),
    ("Journal.forget", "KeyError"),
    ("Journal.begin_attempt", "KeyError"),
    ("Journal.retry_later", "KeyError"),
    ("Journal.mark_sent", "KeyError"),
    ("Journal.mark_failed", "KeyError"),
    ("Journal.mark_done", "KeyError"),
    ("Journal.hold", "KeyError"),
    ("Journal.release", "KeyError"),
    ("Journal.assign", "KeyError"),
)
def test_journal_unknown_files_and_bad_arguments(journal: Journal) -> None:
    with pytest.raises(ValueError, match="invalid journal path '/abs'"):
        journal.seen("m", "/abs", size=1, mtime_ns=1, now=1.0)
    with pytest.raises(ValueError, match="invalid limit -1"):
        journal.due("m", now=1.0, limit=-1)
    unknown = "the journal has no entry for 'x'"
    assigned = Assignment(day=dt.date(2024, 1, 15), instance_number=1)
    calls: list[Callable[[], object]] = [
        lambda: journal.forget("m", "x"),
        lambda: journal.begin_attempt("m", "x", now=1.0),
        lambda: journal.retry_later("m", "x", error="e", next_attempt=2.0, now=1.0),
        lambda: journal.mark_sent("m", "x", uids=[], now=1.0),
        lambda: journal.mark_failed("m", "x", error="e", now=1.0),
        lambda: journal.mark_done("m", "x", now=1.0),
        lambda: journal.hold("m", "x", reason="r", now=1.0),
        lambda: journal.release("m", "x", now=1.0),
        lambda: journal.assign("m", "x", assigned, now=1.0),
    ]
    for call in calls:
        with pytest.raises(KeyError, match=unknown):
            call()


@checks(
    ("Journal.begin_attempt", "ValueError"),
    ("Journal.retry_later", "ValueError"),
    ("Journal.mark_sent", "ValueError"),
    ("Journal.mark_failed", "ValueError"),
    ("Journal.mark_done", "ValueError"),
    ("Journal.hold", "ValueError"),
    ("Journal.release", "ValueError"),
)
def test_journal_wrong_states(journal: Journal) -> None:
    journal.seen("m", "a", size=1, mtime_ns=1, now=1.0)
    journal.begin_attempt("m", "a", now=1.0)
    with pytest.raises(ValueError, match=r"cannot begin an attempt .*it is sending"):
        journal.begin_attempt("m", "a", now=1.0)
    with pytest.raises(ValueError, match=r"cannot mark as done .*it is sending"):
        journal.mark_done("m", "a", now=1.0)
    with pytest.raises(ValueError, match=r"cannot release .*it is sending"):
        journal.release("m", "a", now=1.0)
    journal.mark_sent("m", "a", uids=["1.2.3"], now=2.0)
    with pytest.raises(ValueError, match=r"cannot schedule a retry .*it is sent"):
        journal.retry_later("m", "a", error="e", next_attempt=3.0, now=2.0)
    with pytest.raises(ValueError, match=r"cannot hold .*it is sent"):
        journal.hold("m", "a", reason="r", now=2.0)
    with pytest.raises(ValueError, match=r"cannot mark as sent .*it is sent"):
        journal.mark_sent("m", "a", uids=[], now=2.0)
    journal.mark_done("m", "a", now=3.0)
    with pytest.raises(ValueError, match=r"cannot mark as failed .*it is done"):
        journal.mark_failed("m", "a", error="e", now=3.0)


# -- what a hung peer costs ------------------------------------------------------------------


def test_echo_abort_is_quick_and_said_so() -> None:
    """An aborted C-ECHO ends at once, not after the DIMSE timeout, and the message says so."""
    with _echo_scp(on_echo=_abort) as port:
        started = time.monotonic()
        with pytest.raises(AssociationAbortedError, match="aborted the association instead"):
            Sender(device_to("ECHOSCP", port, timeouts=Timeouts(dimse_s=30))).echo()
    assert time.monotonic() - started < 10


@checks(
    ("pick_worklist_study", "WorklistMatchError"),
    ("pick_worklist_study", "DicomNetworkError"),
    ("pick_worklist_study", "InvalidValueError"),
)
def test_pick_worklist_study_raises(worklist_scp_factory: WorklistSCPFactory) -> None:
    from sendtopacs_core import Study, WorklistMatchError, pick_worklist_study
    from sendtopacs_core.testing import make_worklist_item

    items = [
        make_worklist_item(patient_name="Pick^One", patient_id="P1", accession_number="A1"),
        make_worklist_item(patient_name="Pick^One", patient_id="P1", accession_number="A2"),
        make_worklist_item(
            patient_name="Bad^Sex", patient_id="P2", accession_number="A3", patient_sex="Q"
        ),
    ]
    querier = Querier(_worklist_device(worklist_scp_factory(items).port))
    with pytest.raises(WorklistMatchError, match="2 worklist items match") as several:
        pick_worklist_study(querier, Study(patient_id="P1"))
    assert len(several.value.candidates) == 2
    with pytest.raises(WorklistMatchError, match="no worklist item matches"):
        pick_worklist_study(querier, Study(patient_id="NOBODY"))
    with pytest.raises(WorklistMatchError, match=r"pick 3: the worklist .* gave 2 item"):
        pick_worklist_study(querier, Study(patient_id="P1"), pick=3)
    study, item = pick_worklist_study(querier, Study(patient_id="P1", additional_info="x"), pick=2)
    assert (study.accession_number, study.additional_info, item.accession_number) == (
        "A2",
        "x",
        "A2",
    )
    with pytest.raises(InvalidValueError, match="worklist item"):
        pick_worklist_study(querier, Study(patient_id="P2"))
    closed = Querier(_worklist_device(free_port()))
    with pytest.raises(DicomNetworkError, match=r"refused|cannot connect|unreachable"):
        pick_worklist_study(closed, Study(patient_id="P1"))


@checks(
    ("Converter.convert", "InvalidValueError"),
    ("NonDicomSettings.check_additional_info", "InvalidValueError"),
)
def test_additional_info_outside_the_offered_values(tmp_path: Path) -> None:
    import attrs

    from sendtopacs_core import Study

    base = Settings()
    non_dicom = attrs.evolve(
        base.non_dicom, additional_info_tag="0020,4000", additional_info_values=("left", "right")
    )
    with pytest.raises(InvalidValueError, match=r"'middle'.*'left', 'right'"):
        non_dicom.check_additional_info("middle")
    non_dicom.check_additional_info("left")
    photo = tmp_path / "a.png"
    photo.write_bytes(b"not read: the value is refused first")
    converter = Converter(attrs.evolve(base, non_dicom=non_dicom))
    with pytest.raises(InvalidValueError, match="additional info 'middle'"):
        converter.convert([photo], Study(additional_info="middle"), out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
