"""Fixtures that start real network peers (DCMTK ``storescp``, Orthanc) on 127.0.0.1.

The peers themselves live in ``tests/_netpeers.py``. The factories are function-scoped so that
each test chooses its options; every peer a factory started is stopped at teardown. Tests that
use one of these fixtures are marked ``interop``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, TypeAlias, Unpack

import pytest

from tests._netpeers import (
    BlackHolePeer,
    DcmtkQRSCP,
    DcmtkStoreSCP,
    DcmtkWorklistSCP,
    OrthancFactory,
    OrthancOptions,
    OrthancPeer,
    OrthancWorklistPeer,
    StoreSCPFactory,
    StoreSCPOptions,
    TlsFiles,
    make_tls_files,
)
from tests._peers import require_tool

#: Fixtures that start an external peer; tests using them get the ``interop`` marker.
NETWORK_FIXTURES: Final = frozenset(
    {
        "black_hole",
        "dcmtk_qrscp_factory",
        "dcmtk_storescp_factory",
        "dcmtk_worklist_factory",
        "orthanc_factory",
        "orthanc_worklist_factory",
        "tls_files",
    }
)

#: ``dcmtk_worklist_factory(items, **options) -> DcmtkWorklistSCP`` (running).
DcmtkWorklistFactory: TypeAlias = Callable[..., DcmtkWorklistSCP]
#: ``dcmtk_qrscp_factory(datasets, **options) -> DcmtkQRSCP`` (running).
DcmtkQRSCPFactory: TypeAlias = Callable[..., DcmtkQRSCP]
#: ``orthanc_worklist_factory(database, **options) -> OrthancWorklistPeer`` (running).
OrthancWorklistFactory: TypeAlias = Callable[..., OrthancWorklistPeer]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that use a network-peer fixture as ``interop``."""
    for item in items:
        if NETWORK_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.interop)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA with a ``localhost`` server certificate and a client certificate (PEM)."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def dcmtk_storescp_factory(tmp_path: Path) -> Iterator[StoreSCPFactory]:
    """Start DCMTK ``storescp`` peers: ``factory(**options) -> DcmtkStoreSCP`` (running).

    Options are those of :class:`tests._netpeers.DcmtkStoreSCP`; each peer works in its own
    folder under ``tmp_path``.
    """
    require_tool("storescp")
    require_tool("echoscu")
    peers: list[DcmtkStoreSCP] = []

    def start(**options: Unpack[StoreSCPOptions]) -> DcmtkStoreSCP:
        peer = DcmtkStoreSCP(tmp_path / f"storescp-{len(peers)}", **options)
        peers.append(peer)
        return peer.start()

    try:
        yield start
    finally:
        for peer in peers:
            peer.close()


@pytest.fixture
def orthanc_factory(tmp_path: Path) -> Iterator[OrthancFactory]:
    """Start Orthanc peers: ``factory(**options) -> OrthancPeer`` (running).

    Options are those of :class:`tests._netpeers.OrthancPeer`; each peer works in its own
    folder under ``tmp_path``.
    """
    require_tool("Orthanc")
    peers: list[OrthancPeer] = []

    def start(**options: Unpack[OrthancOptions]) -> OrthancPeer:
        peer = OrthancPeer(tmp_path / f"orthanc-{len(peers)}", **options)
        peers.append(peer)
        return peer.start()

    try:
        yield start
    finally:
        for peer in peers:
            peer.close()


@pytest.fixture
def dcmtk_worklist_factory(tmp_path: Path) -> Iterator[DcmtkWorklistFactory]:
    """Start DCMTK ``wlmscpfs`` peers: ``factory(items, **options) -> DcmtkWorklistSCP``.

    ``items`` and the options are those of :class:`tests._netpeers.DcmtkWorklistSCP`; each
    peer works in its own folder under ``tmp_path``.
    """
    require_tool("wlmscpfs")
    require_tool("echoscu")
    peers: list[DcmtkWorklistSCP] = []

    def start(items: Path | Sequence[Any], **options: Any) -> DcmtkWorklistSCP:
        peer = DcmtkWorklistSCP(items, tmp_path / f"wlmscpfs-{len(peers)}", **options)
        peers.append(peer)
        return peer.start()

    try:
        yield start
    finally:
        for peer in peers:
            peer.close()


@pytest.fixture
def dcmtk_qrscp_factory(tmp_path: Path) -> Iterator[DcmtkQRSCPFactory]:
    """Start DCMTK ``dcmqrscp`` peers: ``factory(datasets, **options) -> DcmtkQRSCP``.

    The datasets are indexed with ``dcmqridx`` before the start; each peer works in its own
    folder under ``tmp_path``.
    """
    require_tool("dcmqrscp")
    require_tool("dcmqridx")
    require_tool("echoscu")
    peers: list[DcmtkQRSCP] = []

    def start(datasets: Sequence[Any], **options: Any) -> DcmtkQRSCP:
        peer = DcmtkQRSCP(datasets, tmp_path / f"dcmqrscp-{len(peers)}", **options)
        peers.append(peer)
        return peer.start()

    try:
        yield start
    finally:
        for peer in peers:
            peer.close()


@pytest.fixture
def orthanc_worklist_factory(tmp_path: Path) -> Iterator[OrthancWorklistFactory]:
    """Start Orthanc with its worklist plugin: ``factory(database, **options)``.

    ``database`` is the folder of ``.wl`` files; the options are those of
    :class:`tests._netpeers.OrthancWorklistPeer` (``default_encoding``...).
    """
    require_tool("Orthanc")
    peers: list[OrthancWorklistPeer] = []

    def start(database: Path, **options: Any) -> OrthancWorklistPeer:
        peer = OrthancWorklistPeer(database, tmp_path / f"orthanc-wl-{len(peers)}", **options)
        peers.append(peer)
        return peer.start()

    try:
        yield start
    finally:
        for peer in peers:
            peer.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHolePeer]:
    """A started :class:`tests._netpeers.BlackHolePeer` (accepts, never answers)."""
    with BlackHolePeer() as peer:
        yield peer
