"""A content store backed by any Kubo-compatible IPFS HTTP RPC endpoint (Kubo, js-ipfs).

Talks through ``ipfshttpclient`` 0.7.0, constructed directly (its ``connect()`` refuses daemon
versions newer than 0.8.0). Reads are trustless: documents are fetched block by block
(``block/get``) and every block is verified against its CID by :class:`ContentStore`, so a
lying node cannot slip altered bytes through. Writes stream the input through our own DAG builder
first (into a spooled temporary file, enforcing the size limit before anything is sent), then
``add`` it with the same layout and check that the node reports the CID we computed.
"""

from __future__ import annotations

import tempfile
import warnings
from typing import IO, Any

import httpx
import ipfshttpclient  # type: ignore[import-untyped]
import ipfshttpclient.exceptions  # type: ignore[import-untyped]
from ipfshttpclient import multipart

from ledger_api.documents._cid import Cid
from ledger_api.documents._store import (
    DEFAULT_MAX_SIZE,
    ContentStore,
    Source,
    StoredDocument,
    _chunks,
)
from ledger_api.documents._unixfs import DagBuilder
from ledger_api.errors import DocumentNotFound, IntegrityError, StoreUnavailable

__all__ = ["IpfsStore"]

_SPOOL_IN_MEMORY = 8 * 1024 * 1024


class _NamedReader:
    """A file-like view with the ``name`` ipfshttpclient's multipart encoder insists on."""

    name = "document"

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh

    def read(self, size: int = -1) -> bytes:
        return self._fh.read(size)


def _api_url(multiaddr: str) -> str:
    parts = multiaddr.strip("/").split("/")
    if len(parts) >= 4 and parts[0] in ("ip4", "ip6", "dns", "dns4", "dns6") and parts[2] == "tcp":
        host = f"[{parts[1]}]" if parts[0] == "ip6" else parts[1]
        return f"http://{host}:{parts[3]}"
    raise ValueError(f"unsupported API multiaddr {multiaddr!r}")


class IpfsStore(ContentStore):
    """Documents on an IPFS node reached through its HTTP RPC API.

    ``api`` is the RPC multiaddr, e.g. ``/ip4/127.0.0.1/tcp/5001/http``. ``fetch_timeout`` bounds
    each block fetch (the node may have to find the block on its peers first).
    """

    def __init__(self, api: str, *, timeout: float = 60.0, fetch_timeout: float = 30.0) -> None:
        self.api = api
        self.fetch_timeout = fetch_timeout
        self._url = _api_url(api)
        try:
            self._client = ipfshttpclient.Client(api, timeout=timeout)
        except ipfshttpclient.exceptions.Error as exc:
            raise StoreUnavailable(api, str(exc)) from exc

    def __repr__(self) -> str:
        return f"IpfsStore({self.api!r})"

    def close(self) -> None:
        """Release the HTTP session."""
        self._client.close()

    def _call(self, what: str, fn: Any, *args: Any, cid: str | None = None, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                # ipfshttpclient 0.7.0 passes urllib3 1.x `strict`; urllib3 2.x warns each call
                warnings.filterwarnings("ignore", "The 'strict' parameter", FutureWarning)
                return fn(*args, **kwargs)
        except ipfshttpclient.exceptions.TimeoutError as exc:
            if cid is not None:
                raise DocumentNotFound(cid, f"{self.api}: not found within the timeout") from exc
            raise StoreUnavailable(self.api, f"{what}: timed out") from exc
        except ipfshttpclient.exceptions.ErrorResponse as exc:
            if cid is not None and any(
                s in str(exc).lower() for s in ("not found", "not pinned", "timeout", "aborted")
            ):
                raise DocumentNotFound(cid, f"{self.api}: {exc}") from exc
            raise StoreUnavailable(self.api, f"{what}: {exc}") from exc
        except ipfshttpclient.exceptions.Error as exc:
            raise StoreUnavailable(self.api, f"{what}: {exc}") from exc

    def version(self) -> str:
        """The node's version string (no compatibility check)."""
        return str(self._call("version", self._client.version)["Version"])

    def peer_id(self) -> str:
        """The node's peer id."""
        return str(self._call("id", self._client.id)["ID"])

    def swarm_addresses(self) -> list[str]:
        """Multiaddrs (with /p2p/<id>) the node listens on."""
        return [str(a) for a in self._call("id", self._client.id)["Addresses"]]

    def swarm_connect(self, multiaddr: str) -> None:
        """Connect to a peer. Raw RPC call: ipfshttpclient 0.7.0's ``swarm.connect`` is broken."""
        try:
            response = httpx.post(f"{self._url}/api/v0/swarm/connect", params={"arg": multiaddr}, timeout=30)
        except httpx.HTTPError as exc:
            raise StoreUnavailable(self.api, f"swarm connect: {exc}") from exc
        if response.status_code != 200:
            raise StoreUnavailable(self.api, f"swarm connect {multiaddr}: {response.text.strip()}")

    # --- writes ---

    def put(
        self,
        source: Source,
        *,
        max_size: int | None = DEFAULT_MAX_SIZE,
        cid_version: int = 1,
        pin: bool = True,
    ) -> StoredDocument:
        """Add a document; raises :class:`IntegrityError` if the node's CID differs from ours."""
        builder = DagBuilder(cid_version=cid_version)
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
            for chunk in _chunks(source, max_size):  # size limit enforced before any upload
                builder.feed(chunk)
                spool.write(chunk)
            expected = builder.finish()
            spool.seek(0)
            options: dict[str, Any] = {"pin": pin, "chunker": "size-262144"}
            if cid_version == 1:
                options.update(cid_version=1, raw_leaves=True)
            result = self._call("add", self._client.add, _NamedReader(spool), **options)
        reported = Cid.parse(result["Hash"])
        if reported != expected:
            raise IntegrityError(str(expected), f"node {self.api} stored it as {reported} (different DAG layout)")
        return StoredDocument(cid=str(expected), size=builder.size)

    def put_block(self, cid: Cid, block: bytes) -> None:
        """Verify and store one block (``block/put`` with the CID's codec)."""
        cid.verify(block)
        body, headers = multipart.stream_bytes(block)
        opts = {"cid-codec": cid.codec_name, "mhtype": "sha2-256", "format": cid.codec_name}
        if cid.version == 1:
            opts["version"] = "1"
        result = self._call(
            "block/put",
            self._client._client.request,
            "/block/put",
            opts=opts,
            data=body,
            headers=headers,
            decoder="json",
        )
        reported = Cid.parse(result[0]["Key"] if isinstance(result, list) else result["Key"])
        if reported.digest != cid.digest:
            raise IntegrityError(str(cid), f"node {self.api} stored the block as {reported}")

    def import_car(self, car: IO[bytes]) -> list[str]:
        """Hand a CAR stream to the node's own ``dag/import`` (pins its roots)."""
        body, headers = multipart.stream_files(car)
        result = self._call(
            "dag/import",
            self._client._client.request,
            "/dag/import",
            data=body,
            headers=headers,
            decoder="json",
        )
        roots = []
        for item in result:
            root = item.get("Root") if isinstance(item, dict) else None
            if root:
                roots.append(str(root["Cid"]["/"]))
        return roots

    # --- reads ---

    def get_block_unverified(self, cid: Cid) -> bytes:
        """``block/get`` (may make the node fetch the block from its peers)."""
        return bytes(
            self._call(
                "block/get",
                self._client.block.get,
                str(cid),
                cid=str(cid),
                timeout=self.fetch_timeout,
            )
        )

    def has(self, cid: str | Cid) -> bool:
        """Whether the node can serve the root block right now.

        Asks ``block/stat`` with ``offline=true`` and a 2 s timeout: Kubo answers from its local
        repo only; js-ipfs ignores ``offline`` and may fetch the block from a connected peer.
        """
        parsed = Cid.parse(cid)
        try:
            self._call(
                "block/stat",
                self._client.block.stat,
                str(parsed),
                cid=str(parsed),
                offline=True,
                timeout=min(self.fetch_timeout, 2.0),
            )
        except DocumentNotFound:
            return False
        return True

    # --- pins ---

    def pin(self, cid: str | Cid) -> None:
        """``pin/add`` (recursive)."""
        parsed = Cid.parse(cid)
        self._call(
            "pin/add",
            self._client.pin.add,
            str(parsed),
            cid=str(parsed),
            timeout=self.fetch_timeout,
        )

    def unpin(self, cid: str | Cid) -> None:
        """``pin/rm``; :class:`DocumentNotFound` if not pinned."""
        parsed = Cid.parse(cid)
        self._call("pin/rm", self._client.pin.rm, str(parsed), cid=str(parsed))

    def list(self) -> list[str]:
        """Recursively pinned CIDs, normalized to base32 CIDv1 except v0 (``Qm…``) roots."""
        result = self._call("pin/ls", self._client.pin.ls, type="recursive")
        keys = result["Keys"] if isinstance(result, dict) or hasattr(result, "__getitem__") else {}
        return sorted(str(Cid.parse(k)) for k in keys)
