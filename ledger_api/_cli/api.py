"""``ledger api …``: talk to a running service with the typed client, signing with a keystore key.

ledger api verify invoice.pdf --as cn-tj-customs-signer-0
ledger api submit declaration.json --document 1:invoice.pdf --as trader-tj-electronics --wait
ledger api status 17 --as trader-tj-electronics
ledger api token --ttl 3600 --as trader-tj-electronics     (an API token for the web pages, shown once)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from ledger_api.api.tokens import MAX_TTL
from ledger_api.chain.keystore import Keystore
from ledger_api.client import LedgerHttpClient
from ledger_api.config import Settings
from ledger_api.errors import ConfigurationError

__all__ = ["register"]

_SHA256 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
#: Largest declaration JSON the CLI reads (the service refuses larger ones anyway).
_MAX_DECLARATION = 1024 * 1024


def register(subparsers: Any) -> None:
    """Add ``api verify | submit | status | token``."""
    api = subparsers.add_parser("api", help="use a running service (signed requests with a keystore key)")
    api.add_argument("--url", default="http://127.0.0.1:8000", help="service base URL (default %(default)s)")
    api.add_argument("--as", dest="label", required=True, help="keystore label of the key to sign with")
    actions = api.add_subparsers(dest="api_command", metavar="ACTION", required=True)

    verify = actions.add_parser("verify", help="verdict for a file (uploaded, streamed) or a sha256")
    verify.add_argument("target", help="a file path, or a sha256 (64 hex digits, optional 0x)")
    verify.set_defaults(handler=_verify)

    submit = actions.add_parser("submit", help="submit a declaration JSON with supporting documents")
    submit.add_argument("declaration", type=Path, help="the declaration document (JSON object)")
    submit.add_argument("--document", action="append", default=[], metavar="TYPE:PATH",
                        help="a supporting document with its type code (repeatable)")  # fmt: skip
    submit.add_argument("--share-with", action="append", default=[], metavar="AGENCY", help="grant another agency")
    submit.add_argument("--idempotency-key", help="retry-safe request key (default: derived from the content)")
    submit.add_argument("--wait", action="store_true", help="wait until the declaration is final (or failed)")
    submit.set_defaults(handler=_submit)

    status = actions.add_parser("status", help="where a submission is")
    status.add_argument("tracking_id")
    status.set_defaults(handler=_status)

    token = actions.add_parser("token", help="mint an API token for this key (e.g. to sign in to the web pages)")
    token.add_argument("--ttl", type=int, default=8 * 3600, metavar="SECONDS",
                       help="lifetime in seconds, 60..2592000 (default %(default)s)")  # fmt: skip
    token.set_defaults(handler=_token)


def _client(args: argparse.Namespace) -> LedgerHttpClient:
    keystore = Keystore.from_settings(Settings())
    if not keystore.has_signer(args.label):
        raise ConfigurationError(f"no key {args.label!r} in the keystore")
    return LedgerHttpClient(base_url=args.url, private_key=bytes(keystore.signer(args.label).key))


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _verify(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if _SHA256.match(args.target) and not Path(args.target).exists():
            verdict = client.verify_hash("0x" + args.target.lower().removeprefix("0x"))
        else:
            path = Path(args.target)
            if not path.is_file():
                raise ConfigurationError(f"{path}: no such file (and not a sha256)")
            verdict = client.verify_file(path)
    _print(verdict)
    return 0 if verdict.get("status") in ("VALID", "VALID_WITH_WARNINGS") else 3


def _read_document(spec: str) -> tuple[int, str, bytes]:
    kind, _, name = spec.partition(":")
    if not (kind.isascii() and kind.isdigit()) or not 0 <= int(kind) <= 255 or not name:
        raise ConfigurationError(f"--document {spec!r}: expected TYPE:PATH with TYPE 0-255")
    path = Path(name)
    if not path.is_file():
        raise ConfigurationError(f"--document {spec!r}: {path} is not a file")
    return int(kind), path.name, path.read_bytes()


def _submit(args: argparse.Namespace) -> int:
    path: Path = args.declaration
    if not path.is_file() or path.stat().st_size > _MAX_DECLARATION:
        raise ConfigurationError(f"{path}: not a file of at most {_MAX_DECLARATION} bytes")
    try:
        declaration = json.loads(path.read_bytes())
    except ValueError as exc:
        raise ConfigurationError(f"{path}: not JSON ({exc})") from None
    except RecursionError:
        raise ConfigurationError(f"{path}: JSON nested too deeply") from None
    if not isinstance(declaration, dict):
        raise ConfigurationError(f"{path}: the declaration must be a JSON object")
    documents = [_read_document(spec) for spec in args.document]
    with _client(args) as client:
        accepted = client.submit_declaration(
            declaration, documents, share_with=args.share_with, idempotency_key=args.idempotency_key
        )
        result = client.wait_settled(accepted["tracking_id"], timeout=120) if args.wait else accepted
    _print(result)
    return 1 if result.get("status") == "failed" else 0


def _status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print(client.submission(args.tracking_id))
    return 0


def _token(args: argparse.Namespace) -> int:
    """Mint a token with a signed request; print only the token on stdout (its id and expiry on
    stderr), so ``TOKEN=$(ledger api --as … token)`` captures it and nothing logs it by accident."""
    if not 60 <= args.ttl <= MAX_TTL:
        raise ConfigurationError(f"--ttl must be 60..{MAX_TTL} seconds")
    with _client(args) as client:
        issued = client.mint_token(ttl_seconds=args.ttl)
    print(f"token {issued['token_id']} for {issued['owner']}, expires at {issued['expires_at']} (Unix time)",
          file=sys.stderr)  # fmt: skip
    print(issued["token"])
    return 0
