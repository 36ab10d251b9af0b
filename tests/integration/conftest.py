"""Fixtures that start real daemons on loopback for the integration tests.

IPFS: two js-ipfs 0.66.1 daemons (see :mod:`tests._support.ipfs`), connected to each other
before the tests run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._support.ipfs import IpfsDaemon, start_daemons, stop_all

__all__ = ["IpfsDaemon"]


@pytest.fixture(scope="session")
def ipfs_daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[IpfsDaemon]]:
    """Two connected js-ipfs daemons on loopback (session-wide: they take ~10 s to start)."""
    daemons = start_daemons(tmp_path_factory.mktemp("ipfs"), ["agency-a", "agency-b"])
    try:
        yield daemons
    finally:
        stop_all(daemons)
