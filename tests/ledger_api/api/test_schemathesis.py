"""Property-based API tests: schemathesis over the published OpenAPI document of the running service.

Every operation ``/openapi.json`` publishes (routes added later included) gets generated requests,
valid and invalid, each signed (RFC 9421) by a real on-chain key so it reaches the route logic
rather than dying at 401. No response may be a server error, every error must be a problem document
with a string ``code``, and responses must match the documented responses. The slow variant sends at
least 10 000 requests (counted by the signer and asserted).

The operations are driven from one test per variant rather than ``schemathesis.pytest.from_fixture``
(the schema only exists once the service runs): its lazy parametrization sets ``Function._nodeid``,
which pytest 9.2 no longer has.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ledger_api.api._schema_support import CALLER_LABELS, SEED, SchemaRun
from tests.ledger_api.api.conftest import Service

#: Requests the fast variant aims for (fuzzing only; it runs with the normal suite); what the slow
#: variant aims for (coverage phase, then fuzzing rounds until it is reached), and the floor it must reach.
FAST_TARGET = 300
SLOW_TARGET = 11_000
SLOW_MINIMUM = 10_000
SLOW_ROUNDS = 4


@pytest.fixture
def run(service: Service) -> Iterator[SchemaRun]:
    """A schemathesis run against the module's service, signing with one key of each kind of caller."""
    assert service.app.state.rate_limiter is None, "the service under test must not rate limit"
    keys = {label: bytes(service.keystore.signer(label).key) for label in CALLER_LABELS}
    schema_run = SchemaRun.load(service.base_url, keys)
    yield schema_run
    schema_run.session.close()


def _check(run: SchemaRun) -> None:
    print(run.summary())
    failures = "\n\n".join(f"== {label}\n{report}" for label, report in run.failures.items())
    assert not run.failures, f"{len(run.failures)} operation(s) failed:\n\n{failures}"
    # Every kind of caller signed requests, and signing works: every request authenticated and
    # reached its route (paths with percent-escapes included: @target-uri is the raw path).
    assert set(run.auth.sent) == set(CALLER_LABELS), run.summary()
    rejected = run.unauthenticated
    assert not rejected, "correctly signed requests were refused:\n" + "\n".join(map(str, rejected))


def test_generated_requests(run: SchemaRun) -> None:
    run.run_round(max_examples=run.examples_for(FAST_TARGET), seed=SEED, coverage=False)
    _check(run)
    assert run.auth.total >= FAST_TARGET // 2, run.summary()


@pytest.mark.slow
def test_generated_requests_slow(run: SchemaRun) -> None:
    per_operation = run.examples_for(SLOW_TARGET)
    run.run_round(max_examples=per_operation, seed=SEED, coverage=True)
    # Operations whose inputs are few run out of distinct examples early; more rounds (other seeds) make up.
    for round_number in range(1, SLOW_ROUNDS):
        if run.auth.total >= SLOW_TARGET:
            break
        run.run_round(max_examples=per_operation, seed=SEED + round_number, coverage=False)
    _check(run)
    assert run.auth.total >= SLOW_MINIMUM, f"only {run.auth.total} requests were sent\n{run.summary()}"
