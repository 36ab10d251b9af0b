"""The error root: credentials in node URLs never reach messages, logs or health reports."""

from __future__ import annotations

import pytest

from ledger_api.errors import ChainUnavailable, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("http://node:8545/rpc", "http://node:8545/rpc"),
        ("https://alice:s3cret@besu.example:8545/", "https://besu.example:8545/"),
        ("https://rpc.example/v3/0123456789abcdef0123456789abcdef", "https://rpc.example/v3/***"),
        ("https://rpc.example/rpc?apikey=s3cret#x", "https://rpc.example/rpc"),
        ("not a url", "not a url"),
    ],
)
def test_node_urls_are_shown_without_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_chain_unavailable_never_repeats_the_secret() -> None:
    url = "https://alice:s3cret@besu.example/v3/0123456789abcdef0123456789abcdef?apikey=k3y"
    error = ChainUnavailable(url, f"ConnectError while posting to {url}")
    text = f"{error}\n{error.diagnostics()}"
    assert "s3cret" not in text and "k3y" not in text and "0123456789abcdef0123" not in text
    assert error.rpc_url == url  # the code still knows where to connect
