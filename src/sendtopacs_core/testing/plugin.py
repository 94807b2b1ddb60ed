"""pytest plugin: fixtures that run an in-process storage SCP (a test PACS).

Enable it with ``pytest -p sendtopacs_core.testing.plugin``; when sendtopacs is installed, its
``pytest11`` entry point (``sendtopacs``) loads it automatically. Then::

    from pynetdicom import AE

    def test_store_reaches_pacs(storage_scp, my_dataset):
        ae = AE(ae_title="MYSCU")
        ae.add_requested_context(my_dataset.SOPClassUID, my_dataset.file_meta.TransferSyntaxUID)
        assoc = ae.associate(*storage_scp.address, ae_title=storage_scp.ae_title)
        status = assoc.send_c_store(my_dataset)
        assoc.release()
        assert status.Status == 0x0000
        [received] = storage_scp.received
        assert received.sop_instance_uid == my_dataset.SOPInstanceUID
        assert received.path is not None and received.path.exists()

    def test_pacs_warns(storage_scp_factory):
        scp = storage_scp_factory(statuses=[0xB000], error_comment="coerced")
        ...

Fixtures
--------
storage_scp
    A started `StorageSCP` storing into ``tmp_path / "storage_scp"``; stopped afterwards.
storage_scp_factory
    A callable taking `StorageSCP` keyword options that returns a started SCP; every SCP it
    made is stopped at teardown.
worklist_scp_factory
    A callable taking `WorklistSCP` arguments (the items, then keyword options) that returns a
    started worklist SCP; every SCP it made is stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, Protocol, Self, TypeAlias, TypeVar

import pytest

from sendtopacs_core.testing._storage_scp import StorageSCP
from sendtopacs_core.testing._worklist_scp import WorklistSCP

__all__ = [
    "StorageSCPFactory",
    "WorklistSCPFactory",
    "storage_scp",
    "storage_scp_factory",
    "worklist_scp_factory",
]

#: The type of the ``storage_scp_factory`` fixture (keyword options as for `StorageSCP`).
StorageSCPFactory: TypeAlias = Callable[..., StorageSCP]

#: The type of the ``worklist_scp_factory`` fixture (arguments as for `WorklistSCP`).
WorklistSCPFactory: TypeAlias = Callable[..., WorklistSCP]

_P = ParamSpec("_P")


class _Startable(Protocol):
    def start(self) -> Self: ...
    def stop(self) -> None: ...


_S = TypeVar("_S", bound=_Startable)


def _started(make: Callable[_P, _S], started: list[_S]) -> Callable[_P, _S]:
    """Wrap `make` so that each SCP it makes is started and recorded in `started`."""

    def start(*args: _P.args, **kwargs: _P.kwargs) -> _S:
        scp = make(*args, **kwargs)
        started.append(scp)
        return scp.start()

    return start


@pytest.fixture
def storage_scp_factory() -> Iterator[StorageSCPFactory]:
    """Return a factory of started storage SCPs; stop them all at teardown."""
    started: list[StorageSCP] = []
    yield _started(StorageSCP, started)
    for scp in reversed(started):
        scp.stop()


@pytest.fixture
def storage_scp(tmp_path: Path) -> Iterator[StorageSCP]:
    """Return a started storage SCP that stores into ``tmp_path / "storage_scp"``."""
    with StorageSCP(storage_dir=tmp_path / "storage_scp") as scp:
        yield scp


@pytest.fixture
def worklist_scp_factory() -> Iterator[WorklistSCPFactory]:
    """Return a factory of started worklist SCPs; stop them all at teardown."""
    started: list[WorklistSCP] = []
    yield _started(WorklistSCP, started)
    for scp in reversed(started):
        scp.stop()
