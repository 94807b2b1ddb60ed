"""The error tree (STYLE.md 8) and the status categories of PS3.7 Annex C, for every code.

The expected categories are written here from the text of PS3.7 Annex C ("Status Type
Encoding"), not taken from our table: Success 0000; Warning 0001, Bxxx, 0107, 0116; Failure
Axxx, Cxxx, 01xx except 0107 and 0116, 02xx; Cancel FE00; Pending FF00, FF01. pynetdicom's
``code_to_category`` is a second, independent reading.
"""

from __future__ import annotations

import pickle

import pytest
from pynetdicom.status import code_to_category

import sendtopacs_core
from sendtopacs_core import errors
from sendtopacs_core.errors import (
    AssociationAbortedError,
    AssociationFailedError,
    AssociationRejectedError,
    ConfigError,
    ContextNotAcceptedError,
    ConversionError,
    CorruptMediaError,
    DicomNetworkError,
    InvalidValueError,
    PeerUnreachableError,
    QueryFailedError,
    SendToPacsError,
    StoreFailedError,
    UnsupportedMediaError,
    WorklistMatchError,
)
from sendtopacs_core.net._status import (
    SendState,
    StatusCategory,
    category,
    classify,
    retryable,
    status_meaning,
    succeeded,
)

# -- the tree --------------------------------------------------------------------------------

#: Each error and its direct parents, as STYLE.md section 8 and issue 12 draw them.
TREE = {
    ConfigError: (SendToPacsError,),
    InvalidValueError: (SendToPacsError, ValueError),
    WorklistMatchError: (SendToPacsError,),
    ConversionError: (SendToPacsError,),
    UnsupportedMediaError: (ConversionError,),
    CorruptMediaError: (ConversionError,),
    DicomNetworkError: (SendToPacsError,),
    AssociationFailedError: (DicomNetworkError,),
    PeerUnreachableError: (AssociationFailedError,),
    AssociationRejectedError: (AssociationFailedError,),
    AssociationAbortedError: (AssociationFailedError,),
    ContextNotAcceptedError: (DicomNetworkError,),
    StoreFailedError: (DicomNetworkError,),
    QueryFailedError: (DicomNetworkError,),
}


@pytest.mark.parametrize("error", list(TREE), ids=lambda e: e.__name__)
def test_parents(error: type[Exception]) -> None:
    assert error.__bases__ == TREE[error]


@pytest.mark.parametrize("error", list(TREE), ids=lambda e: e.__name__)
def test_exported_and_drawn(error: type[Exception]) -> None:
    assert getattr(sendtopacs_core, error.__name__) is error
    assert error.__name__ in sendtopacs_core.__all__
    drawn = [line for line in (errors.__doc__ or "").splitlines() if error.__name__ in line]
    assert drawn, f"{error.__name__} is not drawn in errors.py's docstring"


def test_every_error_of_the_module_is_in_the_tree() -> None:
    ours = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, SendToPacsError) and obj is not SendToPacsError
    }
    assert ours == set(TREE)


PEER = "PACS@10.0.0.5:104"


def _examples() -> list[DicomNetworkError]:
    return [
        DicomNetworkError(f"{PEER} answered the C-ECHO with status 0x0211", peer=PEER),
        AssociationFailedError("lost", transient=False, peer=PEER),
        PeerUnreachableError("cannot connect to 10.0.0.5:104: connection refused", peer=PEER),
        AssociationRejectedError(
            f"association rejected by {PEER}: calling AE title not recognised",
            peer=PEER,
            rejection=(1, 1, 3),
        ),
        AssociationAbortedError(f"association aborted by {PEER}", peer=PEER),
        ContextNotAcceptedError(
            f"{PEER} accepted none", peer=PEER, sop_class_uids=("1.2.840.10008.1.1",)
        ),
        StoreFailedError(
            f"C-STORE of 1.2.3 to {PEER} failed: status 0xA700 (Out of Resources)",
            peer=PEER,
            status=0xA700,
            sop_instance_uid="1.2.3",
        ),
        QueryFailedError(f"{PEER} answered the search with 0xC001", peer=PEER, status=0xC001),
    ]


@pytest.mark.parametrize("error", _examples(), ids=lambda e: type(e).__name__)
def test_network_errors_carry_the_peer_and_survive_pickling(error: DicomNetworkError) -> None:
    assert error.peer == PEER
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_rejection_attributes() -> None:
    permanent = AssociationRejectedError("rejected", peer=PEER, rejection=(1, 1, 3))
    transient = AssociationRejectedError("rejected", peer=PEER, rejection=(2, 3, 1))
    assert permanent.rejection == (1, 1, 3)
    assert not permanent.transient
    assert transient.transient
    assert PeerUnreachableError("x", peer=PEER).transient
    assert PeerUnreachableError("x", peer=PEER).rejection is None
    assert AssociationAbortedError("x", peer=PEER).transient


def test_status_attributes() -> None:
    store = StoreFailedError("failed", peer=PEER, status=0xA900, sop_instance_uid="1.2.3")
    assert (store.status, store.sop_instance_uid) == (0xA900, "1.2.3")
    assert QueryFailedError("failed", peer=PEER, status=0xA700).status == 0xA700
    assert not QueryFailedError("failed", peer=PEER, status=0xC000).transient
    assert ContextNotAcceptedError("none", peer=PEER).transient is False
    assert DicomNetworkError("status 0x0211", peer=PEER).transient is False


def test_invalid_value_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid AE title 'x y': no spaces"):
        raise InvalidValueError("AE title", "x y", "no spaces")


# -- PS3.7 Annex C ---------------------------------------------------------------------------


def annex_c(code: int) -> str:
    """The category of ``code`` as PS3.7 Annex C words it ("Unknown" outside every range)."""
    high, low = code >> 12, code >> 8
    if code == 0x0000:
        return "Success"
    if code in (0x0001, 0x0107, 0x0116) or high == 0xB:
        return "Warning"
    if high in (0xA, 0xC) or low in (0x01, 0x02):
        return "Failure"
    if code == 0xFE00:
        return "Cancel"
    if code in (0xFF00, 0xFF01):
        return "Pending"
    return "Unknown"


EVERY_CODE = range(0x10000)


def test_category_of_every_code() -> None:
    wrong = [f"0x{c:04X}" for c in EVERY_CODE if str(category(c)) != annex_c(c)]
    assert wrong == []


def test_category_agrees_with_pynetdicom_where_it_knows() -> None:
    known = [c for c in EVERY_CODE if code_to_category(c) != "Unknown"]
    assert len(known) > 0x2000  # Axxx, Bxxx, Cxxx at least
    wrong = [f"0x{c:04X}" for c in known if str(category(c)) != code_to_category(c)]
    assert wrong == []


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0x0000, "Success"),
        (0x0001, "Warning"),
        (0x0107, "Warning"),
        (0x0116, "Warning"),
        (0xB000, "Warning"),
        (0xBFFF, "Warning"),
        (0x0100, "Failure"),
        (0x0106, "Failure"),
        (0x0117, "Failure"),
        (0x02FF, "Failure"),
        (0xA000, "Failure"),
        (0xCFFF, "Failure"),
        (0xFE00, "Cancel"),
        (0xFF00, "Pending"),
        (0xFF01, "Pending"),
        (0x0002, "Unknown"),
        (0x0300, "Unknown"),
        (0xD000, "Unknown"),
        (0xFFF0, "Unknown"),
    ],
    ids=lambda v: f"{v:04X}" if isinstance(v, int) else v,
)
def test_category_edges(code: int, expected: str) -> None:
    assert category(code) == StatusCategory(expected)


def test_c_store_state_of_every_code() -> None:
    """Stored exactly for Success and Warning; retryable only for A7xx and 0213."""
    wrong = []
    for code in EVERY_CODE:
        kind = annex_c(code)
        if kind == "Success":
            expected = SendState.SENT
        elif kind == "Warning":
            expected = SendState.SENT_WITH_WARNING
        elif code >> 8 == 0xA7 or code == 0x0213:
            expected = SendState.RETRYABLE
        else:  # Failure, and Cancel, Pending or Unknown as a final C-STORE status
            expected = SendState.FAILED
        if classify(code) is not expected:
            wrong.append(f"0x{code:04X}: {classify(code)} (expected {expected})")
    assert wrong == []


def test_retryable_and_succeeded_are_disjoint() -> None:
    assert not [c for c in EVERY_CODE if retryable(c) and succeeded(c)]
    assert [c for c in EVERY_CODE if succeeded(c)] == sorted(
        c for c in EVERY_CODE if annex_c(c) in ("Success", "Warning")
    )


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (0x0000, "Success"),
        (0xB007, "Data Set Does Not Match SOP Class"),
        (0x0107, "Attribute List Error"),
        (0x0116, "Attribute Value Out of Range"),
        (0xA7FF, "Refused: Out of Resources"),
        (0x0213, "Resource Limitation"),
        (0xB123, "Warning"),
        (0x01FF, "Failure"),
        (0xFFF0, "unknown status"),
    ],
    ids=lambda v: f"{v:04X}" if isinstance(v, int) else v,
)
def test_meanings_come_from_the_table_then_the_category(code: int, words: str) -> None:
    assert status_meaning(code) == words
