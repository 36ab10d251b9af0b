"""Rate limits: token buckets (injected clock, no sleeping), per-caller budgets after a verified
signature, and the per-address budget of failed authentications."""

from __future__ import annotations

import threading
from typing import Annotated, Any

import pytest
from coincurve import PrivateKey
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from ledger_api import errors as e
from ledger_api.api import create_app, problem_for
from ledger_api.api.auth import MemoryNonceStore, RequestAuthenticator, _address_of, sign_request
from ledger_api.api.deps import CurrentIdentity, authenticate_streaming
from ledger_api.api.problems import problem_type
from ledger_api.api.ratelimit import Budget, RateLimiter, RateLimits, TokenBuckets, address_key, rate_limits_from
from ledger_api.config import Settings
from ledger_api.models import Identity

BASE = "http://ledger.test"
WHOAMI = f"{BASE}/v1/whoami"
UPLOAD = f"{BASE}/v1/upload"
PROBLEM = "application/problem+json"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the buckets ---------------------------------------------------------------------------------


def test_a_bucket_allows_its_burst_then_says_how_long_to_wait() -> None:
    clock = Clock()
    buckets = TokenBuckets(Budget(rate=2, burst=3), clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token takes 1/rate seconds
    assert buckets.take("a") == pytest.approx(0.5)  # a refused request spends nothing
    clock.now += 0.25
    assert buckets.take("a") == pytest.approx(0.25)
    clock.now += 0.25
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(0.5)


def test_a_bucket_refills_continuously_but_never_above_its_burst() -> None:
    clock = Clock()
    buckets = TokenBuckets(Budget(rate=1, burst=2), clock=clock)
    buckets.take("a"), buckets.take("a")
    clock.now += 3600  # idle for an hour: still only `burst` tokens
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


def test_keys_have_their_own_buckets() -> None:
    buckets = TokenBuckets(Budget(rate=1, burst=1), clock=Clock())
    assert buckets.take("a") == 0.0 and buckets.take("a") > 0
    assert buckets.take("b") == 0.0


def test_idle_buckets_are_dropped_once_they_would_be_full_again() -> None:
    clock = Clock()
    buckets = TokenBuckets(Budget(rate=1, burst=2), clock=clock)  # refills completely in 2 s
    buckets.take("a"), buckets.take("a"), buckets.take("b")
    clock.now += 1.0
    buckets.take("c")
    assert len(buckets) == 3  # a and b are not full yet: forgetting them would hand out tokens
    assert buckets.take("a") == 0.0 and buckets.take("a") > 0  # a refilled one token only
    clock.now += 2.0
    buckets.take("d")
    assert len(buckets) == 1  # everything else was idle long enough to be full: dropped, nothing lost


def test_idle_eviction_does_bounded_work_per_request_and_drains_over_time() -> None:
    clock = Clock()
    buckets = TokenBuckets(Budget(rate=1, burst=1), clock=clock)
    for n in range(100):
        buckets.take(f"k{n}")
    clock.now += 10
    buckets.take("fresh")
    assert 1 < len(buckets) < 101  # some idle buckets dropped, not all 100 in one request
    for _ in range(20):
        buckets.take("fresh")
    assert len(buckets) == 1


def test_the_table_is_capped_and_drops_the_least_recently_used_bucket() -> None:
    clock = Clock()
    buckets = TokenBuckets(Budget(rate=0.001, burst=1), max_buckets=3, clock=clock)
    buckets.take("a")  # a is now empty
    buckets.take("b"), buckets.take("c")
    assert buckets.take("a") > 0  # touching a makes b the least recently used
    buckets.take("d")
    assert len(buckets) == 3
    assert buckets.take("a") > 0  # a survived (still empty) …
    assert buckets.take("b") == 0.0  # … b was dropped and starts over


def test_buckets_are_thread_safe() -> None:
    buckets = TokenBuckets(Budget(rate=1e-6, burst=1000), clock=Clock())
    granted: list[int] = []
    lock = threading.Lock()

    def hammer() -> None:
        mine = sum(1 for _ in range(500) if buckets.take("shared") == 0.0)
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 1000  # exactly the burst, however the 4000 attempts interleaved


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 5), (float("inf"), 5), (1, 0.5), (1, float("nan"))])
def test_budgets_must_be_positive_and_finite(rate: float, burst: float) -> None:
    with pytest.raises(e.ConfigurationError):
        Budget(rate=rate, burst=burst)


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # same /64: one bucket
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
        (None, "unknown"),
    ],
)
def test_failure_buckets_are_keyed_by_address_and_ipv6_by_its_64(host: str | None, key: str) -> None:
    assert address_key(host) == key


def test_rate_limited_rounds_retry_after_up_to_whole_seconds() -> None:
    assert e.RateLimited("slow down", retry_after=0.01).retry_after == 1
    assert e.RateLimited("slow down", retry_after=2.1).retry_after == 3
    problem = problem_for(e.RateLimited("slow down", retry_after=2.1))
    assert problem.status == 429 and problem.code == "rate-limited" and problem.headers["Retry-After"] == "3"


def test_settings_choose_the_limits() -> None:
    assert rate_limits_from(Settings(rate_limit_enabled=False)) is None
    limits = rate_limits_from(
        Settings(rate_limit_read_rate=7, rate_limit_read_burst=70, rate_limit_write_rate=2, rate_limit_write_burst=9)
    )
    assert limits is not None
    assert limits.reads == Budget(rate=7, burst=70) and limits.writes == Budget(rate=2, burst=9)
    assert limits.failures == Budget(rate=1, burst=30)  # the defaults


def test_create_app_installs_a_limiter_only_when_asked() -> None:
    assert create_app().state.rate_limiter is None
    limits = RateLimits(reads=Budget(rate=3, burst=4))
    limiter = create_app(rate_limits=limits).state.rate_limiter
    assert isinstance(limiter, RateLimiter) and limiter.limits is limits


# --- over HTTP -----------------------------------------------------------------------------------


class Directory:
    """A fixed set of identities."""

    def __init__(self, *identities: Identity) -> None:
        self.by_address = {i.address: i for i in identities}

    def identity(self, address: str, *, at: int) -> Identity | None:
        return self.by_address.get(address)


def _address(key: bytes) -> str:
    return _address_of(PrivateKey(key).public_key)


@pytest.fixture
def keys() -> dict[str, bytes]:
    return {"alice": PrivateKey().secret, "bob": PrivateKey().secret, "lab": PrivateKey().secret}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(keys: dict[str, bytes], clock: Clock) -> FastAPI:
    """Reads 2 per caller (refilling at 0.5/s), writes 1, failed authentications 3 per address."""
    app = create_app()
    app.state.authenticator = RequestAuthenticator(
        directory=Directory(
            Identity(address=_address(keys["alice"]), kind="trader"),
            Identity(address=_address(keys["bob"]), kind="trader"),
            Identity(address=_address(keys["lab"]), kind="agency", agency_id="LAB", roles=frozenset({"INSPECTION"})),
        ),
        nonces=MemoryNonceStore(),
    )
    limits = RateLimits(
        reads=Budget(rate=0.5, burst=2), writes=Budget(rate=0.1, burst=1), failures=Budget(rate=0.25, burst=3)
    )
    app.state.rate_limiter = RateLimiter(limits, clock=clock)

    @app.get("/v1/whoami")
    async def who(caller: CurrentIdentity) -> dict[str, str]:
        return {"address": caller.address}

    @app.post("/v1/whoami")
    async def who_posting(caller: CurrentIdentity) -> dict[str, str]:
        return {"address": caller.address}

    @app.post("/v1/upload")
    async def upload(caller: Annotated[Identity, Depends(authenticate_streaming)], request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    return app


def _client(app: FastAPI, host: str = "198.51.100.7") -> TestClient:
    return TestClient(app, base_url=BASE, client=(host, 40000))


def _get(client: TestClient, key: bytes) -> int:
    headers = sign_request(method="GET", url=WHOAMI, headers={}, body=b"", private_key=key)
    return client.get(WHOAMI, headers=headers).status_code


def _assert_rate_limited(response: Any, retry_after: str) -> dict[str, Any]:
    """The response is a 429 problem saying to retry after ``retry_after`` seconds; returns its body."""
    assert response.status_code == 429 and response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == retry_after
    body = response.json()
    assert body["code"] == "rate-limited" and body["type"] == problem_type("rate-limited") and body["status"] == 429
    return dict(body)


def test_a_caller_over_its_read_budget_gets_429_and_others_are_unaffected(
    app: FastAPI, keys: dict[str, bytes], clock: Clock
) -> None:
    client = _client(app)
    assert [_get(client, keys["alice"]) for _ in range(2)] == [200, 200]
    headers = sign_request(method="GET", url=WHOAMI, headers={}, body=b"", private_key=keys["alice"])
    body = _assert_rate_limited(client.get(WHOAMI, headers=headers), retry_after="2")  # 1 token at 0.5/s
    assert "read rate limit" in str(body["detail"])
    assert _get(client, keys["bob"]) == 200  # same address, another caller: its own budget
    clock.now += 2
    assert _get(client, keys["alice"]) == 200  # refilled
    assert _get(client, keys["alice"]) == 429


def test_reads_and_writes_have_separate_budgets(app: FastAPI, keys: dict[str, bytes]) -> None:
    client = _client(app)
    body = b'{"n":1}'

    def post() -> int:
        headers = sign_request(method="POST", url=WHOAMI, headers={}, body=body, private_key=keys["alice"])
        return client.post(WHOAMI, content=body, headers=headers).status_code

    assert post() == 200
    headers = sign_request(method="POST", url=WHOAMI, headers={}, body=body, private_key=keys["alice"])
    _assert_rate_limited(client.post(WHOAMI, content=body, headers=headers), retry_after="10")  # 1 token at 0.1/s
    assert _get(client, keys["alice"]) == 200  # reads still have their budget


def test_streaming_authentication_is_rate_limited_too(app: FastAPI, keys: dict[str, bytes]) -> None:
    client = _client(app)
    body = b"document bytes"

    def upload() -> int:
        headers = sign_request(method="POST", url=UPLOAD, headers={}, body=body, private_key=keys["lab"])
        return client.post(UPLOAD, content=body, headers=headers).status_code

    assert [upload(), upload()] == [200, 429]


def _forged(victim: bytes) -> dict[str, str]:
    """Signed by a stranger's key but naming the victim's keyid."""
    stranger = PrivateKey().secret
    headers = sign_request(method="GET", url=WHOAMI, headers={}, body=b"", private_key=stranger)
    headers["signature-input"] = headers["signature-input"].replace(_address(stranger), _address(victim))
    assert _address(victim) in headers["signature-input"]
    return headers


def test_failed_authentications_from_one_address_turn_into_429(app: FastAPI, keys: dict[str, bytes]) -> None:
    attacker = _client(app, host="198.51.100.66")
    first = [attacker.get(WHOAMI, headers=_forged(keys["alice"])) for _ in range(3)]
    assert [r.status_code for r in first] == [401, 401, 401]
    assert first[0].json()["code"] == "signature-invalid"
    body = _assert_rate_limited(attacker.get(WHOAMI, headers=_forged(keys["alice"])), retry_after="4")
    assert "another key" not in str(body)  # no longer says why a guess failed
    _assert_rate_limited(attacker.get(WHOAMI), retry_after="4")  # unsigned requests count as failures too
    # Another address is not affected; neither is the victim, whose keyid was named in every forgery.
    assert _client(app, host="203.0.113.20").get(WHOAMI, headers=_forged(keys["alice"])).status_code == 401
    assert [_get(_client(app), keys["alice"]) for _ in range(2)] == [200, 200]


def test_a_verified_caller_is_served_from_an_address_that_used_up_its_failures(
    app: FastAPI, keys: dict[str, bytes]
) -> None:
    shared = _client(app, host="198.51.100.66")  # e.g. one NAT address for an attacker and a trader
    for _ in range(4):
        shared.get(WHOAMI)
    assert shared.get(WHOAMI).status_code == 429
    assert _get(shared, keys["bob"]) == 200  # only failures are refused; valid signatures still pass
