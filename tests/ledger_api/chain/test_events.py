"""Raw log reading (adaptive eth_getLogs pages on a real anvil) and the ABI-layout decoder."""

from __future__ import annotations

import random
import socket
from collections.abc import Mapping
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3._utils.events import get_event_data

from ledger_api.chain import ensure_deployed, load_artifact
from ledger_api.chain.events import EventDecoder, EventSpec, JsonRpc, fetch_logs
from ledger_api.config import Settings
from ledger_api.errors import ChainUnavailable, EventDecodeError, LogQueryError

# ------------------------------------------------------------------ decoder vs web3, every event type


def _random_value(abi_type: str, rng: random.Random, components: list[dict[str, Any]] | None = None) -> Any:
    if abi_type.endswith("[]"):
        return [_random_value(abi_type[:-2], rng, components) for _ in range(rng.randint(0, 3))]
    if abi_type.endswith("]"):
        inner, size = abi_type[: abi_type.rindex("[")], int(abi_type[abi_type.rindex("[") + 1 : -1])
        return [_random_value(inner, rng, components) for _ in range(size)]
    if abi_type.startswith("int"):
        bits = int(abi_type[3:] or 256)
        return rng.getrandbits(bits) - (1 << (bits - 1))
    if abi_type == "tuple":
        assert components is not None
        return tuple(_random_value(c["type"], rng, c.get("components")) for c in components)
    if abi_type.startswith("uint"):
        return rng.getrandbits(int(abi_type[4:] or 256))
    if abi_type == "address":
        return to_checksum_address(rng.randbytes(20))
    if abi_type == "bool":
        return rng.random() < 0.5
    if abi_type == "bytes":
        return rng.randbytes(rng.randint(0, 70))
    if abi_type == "string":
        return "".join(rng.choice("abcé€ 中") for _ in range(rng.randint(0, 40)))
    if abi_type.startswith("bytes"):
        return rng.randbytes(int(abi_type[5:]))
    raise AssertionError(abi_type)


def _canonical(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        return "(" + ",".join(_canonical(c) for c in param["components"]) + ")" + param["type"][5:]
    return str(param["type"])


def _norm(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, Mapping):
        return tuple(_norm(v) for v in value.values())
    if isinstance(value, list | tuple):
        return tuple(_norm(v) for v in value)
    return value


def _hexed(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return {k: _hexed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_hexed(v) for v in value)
    return value


def _synthetic_log(entry: dict[str, Any], spec: EventSpec, rng: random.Random, address: str) -> dict[str, Any]:
    topics = [spec.topic0]
    data_types, data_values = [], []
    for param in entry["inputs"]:
        value = _random_value(param["type"], rng, param.get("components"))
        if param["indexed"]:
            topics.append("0x" + encode([_canonical(param)], [value]).hex())
        else:
            data_types.append(_canonical(param))
            data_values.append(value)
    return {
        "address": address,
        "topics": topics,
        "data": "0x" + encode(data_types, data_values).hex(),
        "blockNumber": hex(rng.randint(1, 10**6)),
        "blockHash": "0x" + rng.randbytes(32).hex(),
        "transactionHash": "0x" + rng.randbytes(32).hex(),
        "transactionIndex": "0x0",
        "logIndex": hex(rng.randint(0, 500)),
        "removed": False,
    }


@pytest.mark.parametrize("contract", ["AgencyRegistry", "ClearanceLedger"])
def test_decoder_matches_web3_for_every_event_with_random_values(contract: str) -> None:
    address = to_checksum_address(("11" if contract == "AgencyRegistry" else "22") * 20)
    decoder = EventDecoder.for_contracts({address: contract})
    hex_decoder = EventDecoder.for_contracts({address: contract}, hex_bytes=True)
    specs = {s.name: s for s in decoder.specs}
    codec = Web3().codec
    rng = random.Random(20261123)
    events = [e for e in load_artifact(contract).abi if e["type"] == "event"]
    assert len(events) == len(specs) >= 14
    for entry in events:
        for _ in range(25):
            log = _synthetic_log(entry, specs[entry["name"]], rng, address)
            mine = decoder.decode(log)
            web3_log = {
                **log,
                "topics": [HexBytes(t) for t in log["topics"]],
                "data": HexBytes(log["data"]),
                "blockNumber": int(log["blockNumber"], 16),
                "logIndex": int(log["logIndex"], 16),
                "transactionIndex": 0,
                "blockHash": HexBytes(log["blockHash"]),
                "transactionHash": HexBytes(log["transactionHash"]),
            }
            theirs = get_event_data(codec, entry, web3_log)  # type: ignore[arg-type]
            assert mine.name == theirs["event"] and mine.contract == contract and mine.address == address
            assert (mine.block_number, mine.log_index) == (theirs["blockNumber"], theirs["logIndex"])
            assert {k: _norm(v) for k, v in mine.args.items()} == {k: _norm(v) for k, v in theirs["args"].items()}
            assert _hexed(dict(mine.args)) == dict(hex_decoder.decode(log).args)


def test_static_events_use_the_fixed_layout_and_dynamic_ones_eth_abi() -> None:
    decoder = EventDecoder.for_contracts({"0x" + "22" * 20: "ClearanceLedger", "0x" + "11" * 20: "AgencyRegistry"})
    specs = {s.name: s for s in decoder.specs}
    assert specs["AlertRaised"].static_data is not None and specs["StampRevoked"].static_data is not None
    assert specs["DeclarationSubmitted"].static_data is None and specs["DecisionRecorded"].static_data is None
    # Our dynamic fields (bytes, string, bytes32[], SupportingDocument[]) are read from the head/tail
    # layout directly; eth_abi only decodes shapes we do not read ourselves (see the next test).
    assert all(s.dynamic_data is not None for s in specs.values() if s.static_data is None)
    assert specs["DeclarationSubmitted"].signature == (
        "DeclarationSubmitted(bytes32,address,uint32,bytes32,bytes,(uint8,bytes32,bytes)[])"
    )


def test_shapes_outside_the_fast_layout_fall_back_to_eth_abi() -> None:
    entry = {
        "type": "event", "name": "Odd", "anonymous": False,
        "inputs": [
            {"name": "who", "type": "address", "indexed": True},
            {"name": "pair", "type": "uint64[2]", "indexed": False},
            {"name": "note", "type": "string", "indexed": False},
            {"name": "delta", "type": "int128", "indexed": False},
        ],
    }  # fmt: skip
    spec = EventSpec.from_abi("Test", entry)
    assert spec.static_data is None and spec.dynamic_data is None
    address = "0x" + "44" * 20
    decoder = EventDecoder(contracts={address: "Test"}, specs=[spec])
    rng = random.Random(7)
    for _ in range(20):
        log = _synthetic_log(entry, spec, rng, address)
        mine = decoder.decode(log)
        web3_log = {**log, "topics": [HexBytes(t) for t in log["topics"]], "data": HexBytes(log["data"])}
        theirs = get_event_data(Web3().codec, entry, web3_log)  # type: ignore[arg-type]
        assert {k: _norm(v) for k, v in mine.args.items()} == {k: _norm(v) for k, v in theirs["args"].items()}


def test_a_dynamic_offset_past_the_end_is_a_decode_error() -> None:
    address = "0x" + "22" * 20
    decoder = EventDecoder.for_contracts({address: "ClearanceLedger"})
    spec = next(s for s in decoder.specs if s.name == "BatchAnchored")
    entry = next(e for e in load_artifact("ClearanceLedger").abi if e.get("name") == "BatchAnchored")
    log = _synthetic_log(entry, spec, random.Random(1), address)
    decoder.decode(log)
    head = log["data"][2:]
    broken = head[: 64 * 2] + "00" * 31 + "ff" + head[64 * 3 :]  # manifestCid offset -> 255: past the end
    with pytest.raises(EventDecodeError, match="BatchAnchored"):
        decoder.decode({**log, "data": "0x" + broken[: 64 * 5]})


def test_malformed_and_unknown_logs() -> None:
    address = "0x" + "22" * 20
    decoder = EventDecoder.for_contracts({address: "ClearanceLedger"})
    spec = next(s for s in decoder.specs if s.name == "StampRevoked")
    log = {
        "address": address, "topics": [spec.topic0, "0x" + "00" * 32, "0x" + "01" * 32], "data": "0x" + "00" * 64,
        "blockNumber": "0x1", "blockHash": "0x" + "00" * 32, "transactionHash": "0x" + "00" * 32, "logIndex": "0x0",
    }  # fmt: skip
    assert decoder.decode(log).args["reasonCode"] == 0
    with pytest.raises(EventDecodeError, match="fixed layout"):
        decoder.decode({**log, "data": "0x" + "00" * 63})
    with pytest.raises(EventDecodeError, match="topics"):
        decoder.decode({**log, "topics": log["topics"][:2]})
    unknown = {**log, "topics": ["0x" + "ab" * 32]}
    with pytest.raises(EventDecodeError, match="unknown log"):
        decoder.decode(unknown)
    assert decoder.decode_all([unknown, {**log, "address": "0x" + "33" * 20}, log]) == [decoder.decode(log)]


# ------------------------------------------------------------------ fetch_logs on a real anvil


@pytest.fixture(scope="module")
def deployed(embedded_settings: Settings) -> tuple[str, list[str], int, int]:
    record, _ = ensure_deployed(embedded_settings)
    w3 = Web3(Web3.HTTPProvider(embedded_settings.effective_rpc_url))
    for _ in range(20):  # empty blocks so ranges have room to grow
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    return (
        embedded_settings.effective_rpc_url,
        [record.registry, record.ledger],
        record.deployment_block,
        w3.eth.block_number,
    )


@pytest.mark.integration
def test_tiny_adaptive_pages_return_the_same_logs_as_one_query(deployed: tuple[str, list[str], int, int]) -> None:
    rpc_url, addresses, first, head = deployed
    whole = [log for page in fetch_logs(rpc_url, addresses, first, head, initial_range=10_000) for log in page]
    assert len(whole) > 20
    pages = list(fetch_logs(rpc_url, addresses, first, head, initial_range=1, max_range=8))
    paged = [log for page in pages for log in page]
    assert paged == whole
    assert len(pages) < head - first + 1  # the range grew over small pages
    positions = [(int(log["blockNumber"], 16), int(log["logIndex"], 16)) for log in paged]
    assert positions == sorted(positions)


@pytest.mark.integration
def test_pages_shrink_when_the_node_reports_too_many_results(deployed: tuple[str, list[str], int, int]) -> None:
    rpc_url, addresses, first, head = deployed
    whole = [log for page in fetch_logs(rpc_url, addresses, first, head) for log in page]
    pages = list(fetch_logs(rpc_url, addresses, first, head, initial_range=1_000, result_limit=3))
    assert [log for page in pages for log in page] == whole
    for page in pages:  # over the cap only when one block alone holds more logs
        assert len(page) <= 3 or len({log["blockNumber"] for log in page}) == 1


@pytest.mark.integration
def test_a_query_error_that_is_not_about_size_is_raised(deployed: tuple[str, list[str], int, int]) -> None:
    rpc_url, _, first, head = deployed
    with pytest.raises(LogQueryError):
        list(fetch_logs(rpc_url, ["0xnot-an-address"], first, head))


def test_an_unreachable_node_raises_chain_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rpc = JsonRpc(rpc_url=f"http://127.0.0.1:{port}", retries=2, backoff=0.01)
    with pytest.raises(ChainUnavailable, match=str(port)):
        list(fetch_logs(rpc, ["0x" + "11" * 20], 0, 10))
    with pytest.raises(ValueError):
        list(fetch_logs(rpc, ["0x" + "11" * 20], 0, 10, initial_range=0))
