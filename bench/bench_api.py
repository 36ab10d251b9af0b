"""The HTTP API under load: verify-by-hash, 10 MB verify uploads, declarations anchored through the API.

Rewrites the ``## API`` section of BENCHMARKS.md (only that section).

Run: ``.venv/bin/python bench/bench_api.py`` (``--quick`` for a short run; ``--no-write`` to leave
BENCHMARKS.md alone). It deploys the default consortium on its own anvil in a temporary directory
and runs ``ledger serve`` as a separate process (one uvicorn worker, rate limits off). Requests are
signed (RFC 9421) *before* each timed phase, so the figures are the server's, not the client's
signing cost. Every figure comes with a baseline measured in the same run:

1. verify by hash, 8 concurrent clients (and with ``wrk``, 8 and 64 connections, signed and with an
   API token): requests/s and p50/p99 latency; baseline = the same
   server answering an unsigned request to the same route (401 problem: framework + routing floor);
2. verify a 10 MB upload (streamed, hashed while it arrives): p50 latency seen by the client on
   loopback (an upper bound of the server-side time); baseline = sha256 of 10 MB in-process;
3. declarations through the API (multipart submit → sealed + stored → outbox → chain → final),
   16 concurrent clients: sustained declarations/s; baseline = naive sign + send + wait per
   declaration (eth-account + web3) on the same anvil.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import httpx  # noqa: E402
from _history import free_port  # noqa: E402
from _report import Goal, publish  # noqa: E402
from bench_submit import bench_naive  # noqa: E402
from web3 import Web3  # noqa: E402

from ledger_api.api.auth import sign_request  # noqa: E402
from ledger_api.chain.deploy import ensure_deployed  # noqa: E402
from ledger_api.chain.keystore import Keystore  # noqa: E402
from ledger_api.chain.node import AnvilNode  # noqa: E402
from ledger_api.client import LedgerHttpClient  # noqa: E402
from ledger_api.config import Settings  # noqa: E402

TRADERS = ("trader-tj-electronics", "trader-tj-foods", "trader-rtm-importer")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux /proc), all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _fire(requests: list[tuple[str, str, dict[str, str], bytes]], concurrency: int) -> tuple[float, list[float]]:
    """Send pre-built requests with ``concurrency`` workers; returns (wall seconds, latencies)."""
    latencies: list[float] = []
    pending = iter(requests)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker() -> None:
            for method, url, headers, body in pending:
                began = time.perf_counter()
                response = await client.request(method, url, headers=headers, content=body)
                latencies.append(time.perf_counter() - began)
                if response.status_code >= 500:
                    raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:200]}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, latencies


def _signed_get(url: str, key: bytes) -> tuple[str, str, dict[str, str], bytes]:
    return "GET", url, sign_request(method="GET", url=url, headers={}, body=b"", private_key=key), b""


def bench_verify_hash(base: str, key: bytes, sha: str, n: int, server: int) -> dict[str, float]:
    """Signed GET /v1/verify/{sha256} × n with 8 clients, and the unsigned floor on the same route.

    ``cpu_rps`` is requests per CPU-second of the server process: what one worker sustains when it
    has a core to itself (here the clients and anvil share the machine's two cores with it)."""
    url = f"{base}/v1/verify/{sha}"
    warm = [_signed_get(url, key) for _ in range(200)]
    asyncio.run(_fire(warm, 8))
    signed = [_signed_get(url, key) for _ in range(n)]
    cpu = _cpu_seconds(server)
    wall, latencies = asyncio.run(_fire(signed, 8))
    cpu = _cpu_seconds(server) - cpu
    unsigned = [("GET", url, {}, b"") for _ in range(n)]
    floor_wall, floor_latencies = asyncio.run(_fire(unsigned, 8))
    return {
        "rps": n / wall, "cpu_rps": n / cpu,
        "p50_ms": _percentile(latencies, 0.50) * 1e3, "p99_ms": _percentile(latencies, 0.99) * 1e3,
        "floor_rps": n / floor_wall, "floor_p99_ms": _percentile(floor_latencies, 0.99) * 1e3,
    }  # fmt: skip


def bench_verify_token(base: str, token: str, sha: str, n: int, server: int) -> dict[str, float]:
    """GET /v1/verify/{sha256} × n with 8 clients presenting an API token instead of a signature."""
    url = f"{base}/v1/verify/{sha}"
    requests = [("GET", url, {"authorization": f"Bearer {token}"}, b"") for _ in range(n)]
    asyncio.run(_fire(requests[:200], 8))
    cpu = _cpu_seconds(server)
    wall, latencies = asyncio.run(_fire(requests, 8))
    cpu = _cpu_seconds(server) - cpu
    return {"rps": n / wall, "cpu_rps": n / cpu, "p50_ms": _percentile(latencies, 0.50) * 1e3,
            "p99_ms": _percentile(latencies, 0.99) * 1e3}  # fmt: skip


_WRK_SCRIPT = """
local threads = 0
function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
end
local lines = {}
for line in io.lines(os.getenv("WRK_REQUESTS")) do lines[#lines + 1] = line end
local k = 0
request = function()
  -- each thread walks its own stride of the lines: a signed request must never be sent twice
  local i = ((offset + 2 * k) % #lines) + 1
  k = k + 1
  local headers = {}
  for name, value in string.gmatch(lines[i], "([^\t]+)\t([^\t]+)") do headers[name] = value end
  return wrk.format("GET", nil, headers)
end
"""


def bench_wrk(
    url: str, header_sets: list[dict[str, str]], seconds: int, connections: int = 8
) -> dict[str, float] | None:
    """The same GET with ``wrk`` (C load generator, 2 threads, ``connections`` connections), cycling through
    pre-built header sets (signed requests need a fresh nonce each: give more sets than it sends).
    Returns req/s, p50/p99 ms and the share of non-2xx answers; None without ``wrk``."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        data, script = Path(tmp) / "requests.tsv", Path(tmp) / "cycle.lua"
        data.write_text("".join("\t".join(f"{k}\t{v}" for k, v in h.items()) + "\n" for h in header_sets))
        script.write_text(_WRK_SCRIPT)
        out = subprocess.run(
            [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
            capture_output=True, text=True, timeout=seconds + 30, env=dict(os.environ, WRK_REQUESTS=str(data)),
        ).stdout  # fmt: skip

    def number(pattern: str) -> float:
        match = re.search(pattern, out)
        if match is None:
            raise RuntimeError(f"unexpected wrk output:\n{out}")
        value, unit = float(match.group(1)), match.group(2) if match.lastindex and match.lastindex > 1 else ""
        return value * {"us": 1e-3, "ms": 1.0, "s": 1e3}.get(unit, 1.0)

    total = number(r"(\d+) requests in")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": number(r"Requests/sec:\s+([\d.]+)"), "p50_ms": number(r"50%\s+([\d.]+)(us|ms|s)"),
        "p99_ms": number(r"99%\s+([\d.]+)(us|ms|s)"), "non_2xx": (int(errors.group(1)) if errors else 0) / total,
        "requests": total,
    }  # fmt: skip


def _median_run(runs: list[dict[str, float] | None]) -> dict[str, float] | None:
    """The run with the median throughput (None without wrk)."""
    done = sorted((r for r in runs if r is not None), key=lambda r: r["rps"])
    return done[len(done) // 2] if done else None


def bench_upload(base: str, key: bytes, size: int, n: int) -> dict[str, float]:
    """POST /v1/verify with a ``size``-byte body, n times one after another; client-seen latency."""
    body = os.urandom(size)
    url = f"{base}/v1/verify"
    began = time.perf_counter()
    digest = hashlib.sha256(body).digest()
    hash_ms = (time.perf_counter() - began) * 1e3
    latencies = []
    with httpx.Client(timeout=60) as client:
        for _ in range(n + 2):
            headers = {"content-type": "application/octet-stream"}
            headers |= sign_request(method="POST", url=url, headers=headers, body=body, private_key=key)
            start = time.perf_counter()
            response = client.post(url, headers=headers, content=body)
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise RuntimeError(f"upload verify: {response.status_code} {response.text[:200]}")
        assert response.json()["sha256"].removeprefix("0x") == digest.hex()
    latencies = latencies[2:]  # warm-up
    return {"p50_ms": statistics.median(latencies) * 1e3, "hash_ms": hash_ms}


def _multipart(url: str, key: bytes, declaration: dict[str, Any]) -> tuple[str, str, dict[str, str], bytes]:
    files = [("declaration", ("declaration.json", json.dumps(declaration).encode(), "application/json"))]
    encoded = httpx.Request("POST", url, files=files)
    body = encoded.read()
    headers = {"content-type": encoded.headers["content-type"]}
    headers |= sign_request(method="POST", url=url, headers=headers, body=body, private_key=key)
    return "POST", url, headers, body


def bench_declarations(base: str, keys: list[bytes], outbox: Path, n: int, server: int) -> dict[str, float]:
    """n declarations submitted by 16 concurrent clients; wall time until every one is final."""
    url = f"{base}/v1/declarations"
    tag = os.urandom(4).hex()
    requests = [
        _multipart(url, keys[i % len(keys)], {"jurisdiction": "CN-TJ-CUSTOMS", "local_reference": f"B-{tag}-{i}",
                                              "goods": [{"hs": "850760", "qty": i}]})
        for i in range(n)
    ]  # fmt: skip
    db = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)

    def finals() -> int:
        return int(db.execute("SELECT count(*) FROM entries WHERE state = 'final'").fetchone()[0])

    before = finals()
    cpu = _cpu_seconds(server)
    start = time.perf_counter()
    intake_wall, _ = asyncio.run(_fire(requests, 16))
    intake_cpu = _cpu_seconds(server) - cpu
    deadline = time.monotonic() + 600
    while finals() - before < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {finals() - before} of {n} declarations final after 600 s")
        time.sleep(0.01)
    wall = time.perf_counter() - start
    failed = db.execute("SELECT count(*) FROM entries WHERE state = 'failed'").fetchone()[0]
    db.close()
    if failed:
        raise RuntimeError(f"{failed} journal entries failed")
    return {"rate": n / wall, "intake": n / intake_wall, "cpu_ms": intake_cpu / n * 1e3}


def _start_server(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, LEDGER_VAR_DIR=str(settings.var_dir), LEDGER_ANVIL_PORT=str(settings.anvil_port),
               LEDGER_RATE_LIMIT_ENABLED="false")  # fmt: skip
    command = [sys.executable, "-m", "ledger_api.cli", "serve", "--port", str(port)]
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                  start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["status"] == "ok":
                return server
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        if server.poll() is not None:
            raise RuntimeError(f"ledger serve exited: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    raise RuntimeError("ledger serve did not become healthy")


def main() -> None:
    """Run the three measurements and (unless --no-write) rewrite the API section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (fewer requests)")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    n_verify, n_upload, n_decl = (2_000, 10, 300) if args.quick else (20_000, 30, 2_000)

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        settings = Settings(var_dir=Path(tmp) / "var", anvil_port=free_port())
        record, _ = ensure_deployed(settings)
        keystore = Keystore.from_settings(settings)
        port = free_port()
        server = _start_server(settings, port, Path(tmp) / "serve.log")
        base = f"http://127.0.0.1:{port}"
        try:
            customs = bytes(keystore.signer("cn-tj-customs-signer-0").key)
            trader_keys = [bytes(keystore.signer(label).key) for label in TRADERS]
            document = b"certificate of origin " + os.urandom(256)
            with LedgerHttpClient(base_url=base, private_key=trader_keys[0]) as trader:
                seeded = trader.submit_declaration({"jurisdiction": "CN-TJ-CUSTOMS", "local_reference": "BENCH-SEED"},
                                                   [(3, "origin.pdf", document)])  # fmt: skip
                trader.wait_settled(seeded["tracking_id"], timeout=60)
            sha = "0x" + hashlib.sha256(document).hexdigest()
            with LedgerHttpClient(base_url=base, private_key=customs) as agency:
                deadline = time.monotonic() + 60
                while agency.verify_hash(sha)["status"] == "NOT_ANCHORED" and time.monotonic() < deadline:
                    time.sleep(0.1)

            url = f"{base}/v1/verify/{sha}"
            with LedgerHttpClient(base_url=base, private_key=customs) as agency:
                token = agency.mint_token(ttl_seconds=3600)["token"]
            # wrk first, on a quiet server: three short runs each, the median run reported.
            seconds = 3 if args.quick else 5
            wrk_runs: dict[tuple[str, int], dict[str, float] | None] = {}
            for connections in (8, 64):
                wrk_runs[("API token", connections)] = _median_run(
                    [bench_wrk(url, [{"authorization": f"Bearer {token}"}], seconds, connections) for _ in range(3)]
                )
                wrk_runs[("signed", connections)] = _median_run(
                    [
                        bench_wrk(url, [_signed_get(url, customs)[2] for _ in range(1_500 * seconds)], seconds,
                                  connections)
                        for _ in range(3)
                    ]
                )  # fmt: skip
            verify = bench_verify_hash(base, customs, sha, n_verify, server.pid)
            by_token = bench_verify_token(base, token, sha, n_verify, server.pid)
            upload = bench_upload(base, customs, 10 * 1024 * 1024, n_upload)
            journal = settings.var_dir / "api" / "outbox.db"
            declarations = bench_declarations(base, trader_keys, journal, n_decl, server.pid)
            w3 = Web3(Web3.HTTPProvider(settings.effective_rpc_url))
            naive = bench_naive(w3, bytes(keystore.signer("trader-tj-foods").key), record.ledger, 200)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
            AnvilNode(state_dir=settings.var_dir / "anvil", port=settings.anvil_port).stop()

    ok = lambda good: "met" if good else "**missed**"  # noqa: E731
    rows = [
        ("verify by hash, signed, 8 concurrent clients", f"{verify['rps']:,.0f} req/s",
         f"goal >= 3,000 req/s: {ok(verify['rps'] >= 3000)}; {verify['rps'] / verify['floor_rps']:.2f}x the floor"),
        ("verify by hash, per CPU-second of the server process", f"{verify['cpu_rps']:,.0f} req/s",
         "capacity of one worker with a core of its own"),
        ("verify by hash, latency p50 / p99", f"{verify['p50_ms']:.1f} / {verify['p99_ms']:.1f} ms",
         f"goal p99 <= 10 ms: {ok(verify['p99_ms'] <= 10)}"),
        ("verify by hash, API token instead of a signature", f"{by_token['rps']:,.0f} req/s",
         f"p50 / p99 {by_token['p50_ms']:.1f} / {by_token['p99_ms']:.1f} ms; {by_token['cpu_rps']:,.0f} req/s per "
         f"server CPU-second; {by_token['rps'] / verify['rps']:.1f}x signed"),
        *(
            [(f"verify by hash with `wrk` (C client, {c} connections), {what}", f"{w['rps']:,.0f} req/s",
              f"p50 / p99 {w['p50_ms']:.1f} / {w['p99_ms']:.1f} ms; goal >= 3,000 req/s and p99 <= 10 ms: "
              f"{ok(w['rps'] >= 3000 and w['p99_ms'] <= 10)}; non-2xx {w['non_2xx']:.1%}; median of 3 runs")
             for (what, c), w in wrk_runs.items() if w is not None]
        ),
        ("floor: same route, unsigned (401 problem)", f"{verify['floor_rps']:,.0f} req/s",
         f"framework + routing + problem rendering; p99 {verify['floor_p99_ms']:.1f} ms"),
        ("verify a 10 MB upload, p50 (client-seen, loopback)", f"{upload['p50_ms']:.1f} ms",
         f"goal server-side p50 <= 20 ms: {ok(upload['p50_ms'] <= 20)} (upper bound); "
         f"{upload['p50_ms'] / upload['hash_ms']:.1f}x one in-process sha256 of 10 MB ({upload['hash_ms']:.1f} ms)"),
        (f"declarations through the API, 16 concurrent clients ({n_decl})", f"{declarations['rate']:,.0f}/s",
         f"submit → sealed + stored → outbox → final; goal >= 500/s: {ok(declarations['rate'] >= 500)}"),
        ("API intake (202 responses)", f"{declarations['intake']:,.0f}/s",
         f"journaled durably (group commit); {declarations['cpu_ms']:.1f} ms server CPU per submission, "
         "incl. the outbox worker sending"),
        ("naive baseline: sign + send + wait per declaration", f"{naive:,.0f}/s",
         "200 declarations, eth-account + web3"),
        ("ratio API / naive", f"{declarations['rate'] / naive:.1f}x", "same run, same anvil"),
    ]  # fmt: skip
    load = os.getloadavg()[0]
    section = "\n".join(
        [
            "## API",
            "",
            f"Command: `python bench/bench_api.py{' --quick' if args.quick else ''}` — Python "
            f"{platform.python_version()}, {os.cpu_count()} cores (load average {load:.1f} at the end), "
            f"{time.strftime('%Y-%m-%d')}; `ledger serve` (one uvicorn worker) and anvil on the same machine as "
            "the clients. One run.",
            "",
            "| measurement | result | note |",
            "|---|---|---|",
            *(f"| {a} | {b} | {c} |" for a, b, c in rows),
            "",
            "Where the time goes (a cProfile of the server on 2026-11-23, and the CPU-second figures above): a",
            "signed request costs ~0.6 ms of authentication (RFC 9421 parsing in `http-message-signatures`, secp256k1",
            "recovery, the nonce row); an anchored verdict ~0.6 ms (about ten indexed SQLite queries in",
            "`gather_facts` and the response model); the rest is uvicorn/Starlette/FastAPI. An API token",
            "removes the signature cost, which is why the token rows are the closest to the 3,000 req/s goal;",
            f"`wrk` itself and anvil share the two cores with the server. A submission costs "
            f"{declarations['cpu_ms']:.1f} ms of server",
            "CPU in one Python process: multipart parsing, authentication, sealing (X25519 + AES-GCM), the",
            "embedded store's fsync'd put, the vault row, the group-committed journal, and the outbox",
            "worker's estimate / sign / send / receipt plus the indexer decoding the new events. The write",
            f"path is therefore CPU-bound near {declarations['rate']:,.0f} declarations/s here; the outbox alone "
            "sustains several times that",
            "(Submission section). Getting to 500/s through HTTP needs the HTTP intake spread over several",
            "processes (SQLite WAL takes concurrent journal writers) with one outbox worker: not built yet.",
            "",
        ]
    )
    print(section)
    if not args.no_write:
        goals = [
            Goal(figure=f"verify by hash, {what}, {c} connections (wrk)", value=w["rps"], unit="req/s",
                 goal=">= 3,000 req/s, p99 <= 10 ms", met=w["rps"] >= 3000 and w["p99_ms"] <= 10,
                 baseline="unsigned request, same route (401 floor)", baseline_value=verify["floor_rps"])
            for (what, c), w in wrk_runs.items() if w is not None
        ]
        goals += [
            Goal(figure="verify by hash, signed, 8 clients, p99", value=verify["p99_ms"], unit="ms", goal="<= 10 ms",
                 met=verify["p99_ms"] <= 10, baseline="unsigned floor p99", baseline_value=verify["floor_p99_ms"]),
            Goal(figure="verify a 10 MB upload, p50", value=upload["p50_ms"], unit="ms", goal="<= 20 ms",
                 met=upload["p50_ms"] <= 20, baseline="in-process sha256 of 10 MB", baseline_value=upload["hash_ms"]),
            Goal(figure="declarations through the API", value=declarations["rate"], unit="declarations/s",
                 goal=">= 500/s", met=declarations["rate"] >= 500, baseline="naive sign + send + wait",
                 baseline_value=naive),
        ]  # fmt: skip
        publish("api", section, goals)


if __name__ == "__main__":
    main()
