"""Our C-STORE-RQ command set is byte for byte what pynetdicom encodes."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode

from sendtopacs_core.net._association import c_store_command

uids = (
    st.lists(st.integers(0, 10**12), min_size=2, max_size=12)
    .map(lambda parts: ".".join(map(str, parts))[:64])
    .filter(lambda uid: not uid.endswith("."))
)


@given(
    sop_class=uids,
    sop_instance=uids,
    message_id=st.integers(1, 65535),
    priority=st.sampled_from([0, 1, 2]),
)
def test_matches_pynetdicom(
    sop_class: str, sop_instance: str, message_id: int, priority: int
) -> None:
    request = C_STORE()
    request.MessageID = message_id
    request.AffectedSOPClassUID = sop_class
    request.AffectedSOPInstanceUID = sop_instance
    request.Priority = priority
    request._dataset_path = (Path("unused.dcm"), 0)
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    assert c_store_command(request) == encode(message.command_set, True, True)


def test_odd_uid_is_padded_with_nul() -> None:
    request = C_STORE()
    request.MessageID = 1
    request.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # 25 characters
    request.AffectedSOPInstanceUID = "1.2.3"
    request.Priority = 2
    command = c_store_command(request)
    assert b"1.2.840.10008.5.1.4.1.1.7\x00" in command
    assert len(command) % 2 == 0
