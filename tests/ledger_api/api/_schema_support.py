"""Schemathesis over the service's published OpenAPI document, with every request signed (RFC 9421).

:class:`SigningAuth` is a ``requests`` auth registered as the schema's auth provider
(``schema.auth.set_from_requests``): ``requests`` calls it on the *prepared* request, after the body
is serialized (multipart boundary included), so the signature covers ``@method``, ``@target-uri`` and
the ``Content-Digest`` of exactly the bytes sent, with a fresh nonce for every send (re-sends by
checks and Hypothesis replays included). It is also where requests are counted: every request
schemathesis sends passes through it.

Callers rotate across the kinds of identity the service knows (a trader, a customs authority key,
an inspection agency key, the auditor). The caller of a request is a hash of the request itself
(multipart boundary removed), so Hypothesis replaying an example while shrinking sends it as the
same caller and a failure reproduces.

:meth:`SchemaRun.run_operation` builds, for one operation, the same Hypothesis test schemathesis'
pytest plugin builds (explicit examples, the coverage phase's boundary and negated values, then
fuzzing in positive and negative modes).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import hypothesis
import requests
import schemathesis
from schemathesis import APIOperation, BaseSchema, Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.config import HealthCheck
from schemathesis.generation import derive_operation_seed, overrides
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ledger_api.api.auth import sign_request

__all__ = [
    "CALLER_LABELS",
    "CHECKS",
    "PROBLEM_MEDIA_TYPE",
    "SEED",
    "SchemaRun",
    "SigningAuth",
    "problem_json_errors",
]

#: One key of each kind of caller of the default consortium (keystore labels).
CALLER_LABELS = (
    "trader-tj-electronics",  # a trader (ACTIVE trader account)
    "cn-tj-customs-signer-0",  # a customs authority signer
    "cn-tj-ciq-lab-signer-0",  # an inspection agency signer
    "consortium-audit-signer-0",  # the auditor
)
PROBLEM_MEDIA_TYPE = "application/problem+json"
#: Seed of the generated requests (later rounds add their number). With it and no example database,
#: every run sends the same requests (CI reproducibility).
SEED = 9421
_BOUNDARY = re.compile(r"boundary=\"?([^\";,\s]+)")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class SigningAuth(requests.auth.AuthBase):
    """Signs each prepared request with one of ``keys`` (label → secp256k1 private key) and counts it."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        self.keys = dict(keys)
        self._labels = sorted(self.keys)
        self.sent: Counter[str] = Counter()

    @property
    def total(self) -> int:
        """Requests signed (and so sent) so far."""
        return sum(self.sent.values())

    def caller_for(self, method: str, url: str, body: bytes, content_type: str) -> str:
        """The caller of a request: a stable function of its content (not of the service's port, nor of a
        multipart boundary, which is random)."""
        match = _BOUNDARY.search(content_type)
        if match:
            body = body.replace(match.group(1).encode("latin-1"), b"")
        target = urlsplit(url)
        digest = hashlib.sha256(
            b"\n".join([method.encode(), target.path.encode(), target.query.encode(), body])
        ).digest()
        return self._labels[int.from_bytes(digest[:4], "big") % len(self._labels)]

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body
        if body is None:
            raw = b""
        elif isinstance(body, bytes):
            raw = body
        elif isinstance(body, str):
            raw = body.encode("utf-8")
            request.body = raw  # send exactly the bytes that were signed; requests recomputes Content-Length
        else:  # a streamed body: nothing schemathesis generates for this API
            raise TypeError(f"cannot sign a streamed request body ({type(body).__name__})")
        method, url = str(request.method), str(request.url)
        label = self.caller_for(method, url, raw, str(request.headers.get("Content-Type", "")))
        # An empty POST still signs the digest of its (empty) content: sign_request leaves content-digest out
        # for an empty body, and POST /v1/verify (streamed, digest checked afterwards) requires it.
        empty_digest = hashlib.sha256(b"").digest() if not raw and method in _BODY_METHODS else None
        # Only the signed components matter (@method, @target-uri, content-digest, computed from the body):
        # generated header values never reach the signer.
        signed = sign_request(
            method=method, url=url, headers={}, body=raw, private_key=self.keys[label], content_sha256=empty_digest
        )
        for name in ("Signature", "Signature-Input", "Content-Digest"):
            request.headers.pop(name, None)
        request.headers.update(signed)
        self.sent[label] += 1
        return request


def problem_json_errors(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every 4xx/5xx response is an RFC 9457 problem document (``application/problem+json``) with a string ``code``."""
    if response.status_code < 400:
        return None
    media_type = (response.headers.get("content-type") or [""])[0].split(";")[0].strip().lower()
    assert media_type == PROBLEM_MEDIA_TYPE, (
        f"{response.status_code} response is {media_type or 'untyped'}, not {PROBLEM_MEDIA_TYPE}"
    )
    try:
        document = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"{response.status_code} problem document is not JSON: {exc}") from None
    assert isinstance(document, dict), f"{response.status_code} problem document is not a JSON object"
    code = document.get("code")
    assert isinstance(code, str) and code, f"{response.status_code} problem document has no string `code`"
    return None


#: What every response is checked for: no 5xx; errors are problem documents; the status, media type,
#: headers and body match the documented responses (every operation documents a ``default``
#: problem+json response, so error statuses conform; ``response_schema_conformance`` validates the
#: documented JSON bodies). Checks about how the API *should* react to generated input
#: (``negative_data_rejection``, ``positive_data_acceptance``, ``ignored_auth``, …) are not run:
#: authentication is a request signature the document cannot describe, and a schema-valid request is
#: still refused for ledger reasons (unknown declaration, caller of the wrong kind).
CHECKS = [
    not_a_server_error,
    problem_json_errors,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass
class SchemaRun:
    """One schemathesis run against a served app: the loaded schema, its signer and what came back."""

    schema: BaseSchema
    auth: SigningAuth
    #: One connection pool for the whole run (keep-alive: no TCP handshake per request).
    session: requests.Session = field(default_factory=requests.Session)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    #: 401 responses: ``(method, url, problem detail)``.
    unauthenticated: list[tuple[str, str, str]] = field(default_factory=list)
    #: Operation label → failure report (with a reproduction) of every operation that failed.
    failures: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, base_url: str, keys: dict[str, bytes]) -> SchemaRun:
        """Load ``base_url/openapi.json``; requests are generated in positive and negative modes, derandomized,
        without an example database, and signed by ``keys`` in turn."""
        schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
        schema.config.generation.update(
            modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], deterministic=True, database="none"
        )
        schema.config.seed = SEED  # explicit, so the seed each round passes applies (it outranks derandomize)
        # Hypothesis' health checks judge generation speed and filtering; a slow or filtered example here
        # is a property of the schema (multipart bodies, path patterns), not a test bug.
        schema.config.update(suppress_health_check=[HealthCheck.all])
        auth = SigningAuth(keys)
        schema.auth.set_from_requests(auth)
        return cls(schema=schema, auth=auth)

    @property
    def operations(self) -> list[APIOperation]:
        """Every operation of the published document (a malformed definition fails here)."""
        return [result.ok() for result in self.schema.get_all_operations()]

    def examples_for(self, requests_wanted: int) -> int:
        """Fuzzed examples per operation for about ``requests_wanted`` requests in total: spread over the
        operations that take input (one without any has a single distinct request)."""
        with_input = [op for op in self.operations if list(op.iter_parameters()) or op.body]
        return max(10, -(-requests_wanted // max(1, len(with_input))))

    def call(self, case: Case) -> None:
        """Send ``case`` (the auth provider signs it), tally the response and validate it."""
        response = case.call(session=self.session)
        self.statuses.setdefault(case.operation.label, Counter())[response.status_code] += 1
        if response.status_code == 401:
            detail = str(json.loads(response.content).get("detail", "")) if response.content else ""
            self.unauthenticated.append((case.method.upper(), str(response.request.url), detail))
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseExceptionGroup as failures:
            # schemathesis' FailureGroup is a BaseExceptionGroup, which Hypothesis does not treat as a test
            # failure (it would propagate at once, unshrunk); as an AssertionError Hypothesis shrinks it.
            raise AssertionError(str(failures)) from None

    def run_round(self, *, max_examples: int, seed: int, coverage: bool) -> None:
        """One pass over every operation: its schema examples, the coverage phase's boundary and negated
        values (``coverage``), then ``max_examples`` fuzzed cases from ``seed``."""
        for operation in self.operations:
            self.run_operation(operation, max_examples=max_examples, seed=seed, coverage=coverage)

    def run_operation(self, operation: APIOperation, *, max_examples: int, seed: int, coverage: bool) -> None:
        """The Hypothesis test schemathesis' pytest plugin builds for ``operation``, run once. A failure (after
        shrinking) is recorded, not raised, so every operation runs."""
        config = self.schema.config
        phases = config.phases_for(operation=operation)
        modes = [
            mode
            for mode, enabled in (
                (HypothesisTestMode.EXAMPLES, phases.examples.enabled),
                (HypothesisTestMode.FUZZING, phases.fuzzing.enabled),
                (HypothesisTestMode.COVERAGE, phases.coverage.enabled and coverage),
            )
            if enabled
        ]
        settings = config.get_hypothesis_settings(operation=operation, phase="fuzzing")

        def generated(case: Case) -> None:
            self.call(case)

        test = create_test(
            operation=operation,
            test_func=generated,
            config=HypothesisTestConfig(
                settings=hypothesis.settings(settings, max_examples=max_examples),
                explicit_setting_names=config.explicit_hypothesis_settings(operation=operation, phase="fuzzing"),
                modes=modes,
                seed=derive_operation_seed(seed, operation.label),
                project=config,
                override=overrides.with_config_headers(config, operation=operation),
                feedback=FeedbackSources(),
            ),
        )
        try:
            test()
        except Exception as exc:  # the shrunk failure (or several, as an ExceptionGroup), or an error
            self.failures.setdefault(operation.label, f"{type(exc).__name__}: {exc}")

    def summary(self) -> str:
        """Requests per caller and responses per operation and status."""
        lines = [f"{self.auth.total} requests; by caller: {dict(sorted(self.auth.sent.items()))}"]
        lines += [f"  {label}: {dict(sorted(counts.items()))}" for label, counts in sorted(self.statuses.items())]
        return "\n".join(lines)
