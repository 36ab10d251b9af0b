"""Optional native keccak256 batch kernels for Merkle batches (compiled on first use, then cached).

Python pays ~1 µs of call overhead per keccak; a 1M-leaf OpenZeppelin tree needs ~3M of them.
This module embeds a small, portable C implementation of keccak-f[1600] with batch entry points
(double-hash fixed-width leaves, sort + lay out + hash a whole tree, fold proofs) and builds it
with the system C compiler into a per-user cache directory the first time it is needed.

It is strictly an accelerator: if there is no compiler, compilation fails, the host is not
little-endian, the self-test against ``safe-pysha3`` disagrees, or ``LEDGER_NATIVE_KECCAK=0``, then
:func:`load` returns ``None`` and callers use the pure-Python path (same results, slower).
The cache directory is ``$LEDGER_NATIVE_CACHE`` or ``~/.cache/ledger_api`` (falling back to the
temp directory); the library file name carries the hash of the source, so an edited source is
rebuilt, and it is written to a temporary name and renamed into place (safe under concurrency).
"""

from __future__ import annotations

import array
import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from sha3 import keccak_256  # type: ignore[import-untyped]

__all__ = ["NativeKeccak", "load"]

_C_SOURCE = r"""
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 16

static const uint64_t RC[24] = {
  0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
  0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
  0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
  0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
  0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
  0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL};
#define ROTL64(x, y) (((x) << (y)) | ((x) >> (64 - (y))))

/* keccak-f[1600], rounds unrolled per lane (generated from the rho/pi tables). */
static void keccakf(uint64_t st[25]) {
  uint64_t a00 = st[0]; uint64_t a10 = st[1]; uint64_t a20 = st[2]; uint64_t a30 = st[3];
  uint64_t a40 = st[4]; uint64_t a01 = st[5]; uint64_t a11 = st[6]; uint64_t a21 = st[7];
  uint64_t a31 = st[8]; uint64_t a41 = st[9]; uint64_t a02 = st[10]; uint64_t a12 = st[11];
  uint64_t a22 = st[12]; uint64_t a32 = st[13]; uint64_t a42 = st[14]; uint64_t a03 = st[15];
  uint64_t a13 = st[16]; uint64_t a23 = st[17]; uint64_t a33 = st[18]; uint64_t a43 = st[19];
  uint64_t a04 = st[20]; uint64_t a14 = st[21]; uint64_t a24 = st[22]; uint64_t a34 = st[23];
  uint64_t a44 = st[24];
  uint64_t b00, b10, b20, b30, b40; uint64_t b01, b11, b21, b31, b41;
  uint64_t b02, b12, b22, b32, b42; uint64_t b03, b13, b23, b33, b43;
  uint64_t b04, b14, b24, b34, b44;
  uint64_t c0, c1, c2, c3, c4, d0, d1, d2, d3, d4;
  for (int r = 0; r < 24; r++) {
    c0 = a00 ^ a01 ^ a02 ^ a03 ^ a04;
    c1 = a10 ^ a11 ^ a12 ^ a13 ^ a14;
    c2 = a20 ^ a21 ^ a22 ^ a23 ^ a24;
    c3 = a30 ^ a31 ^ a32 ^ a33 ^ a34;
    c4 = a40 ^ a41 ^ a42 ^ a43 ^ a44;
    d0 = c4 ^ ROTL64(c1, 1); d1 = c0 ^ ROTL64(c2, 1); d2 = c1 ^ ROTL64(c3, 1);
    d3 = c2 ^ ROTL64(c4, 1); d4 = c3 ^ ROTL64(c0, 1);
    b00 = (a00 ^ d0); b13 = ROTL64((a01 ^ d0), 36); b21 = ROTL64((a02 ^ d0), 3);
    b34 = ROTL64((a03 ^ d0), 41); b42 = ROTL64((a04 ^ d0), 18); b02 = ROTL64((a10 ^ d1), 1);
    b10 = ROTL64((a11 ^ d1), 44); b23 = ROTL64((a12 ^ d1), 10); b31 = ROTL64((a13 ^ d1), 45);
    b44 = ROTL64((a14 ^ d1), 2); b04 = ROTL64((a20 ^ d2), 62); b12 = ROTL64((a21 ^ d2), 6);
    b20 = ROTL64((a22 ^ d2), 43); b33 = ROTL64((a23 ^ d2), 15); b41 = ROTL64((a24 ^ d2), 61);
    b01 = ROTL64((a30 ^ d3), 28); b14 = ROTL64((a31 ^ d3), 55); b22 = ROTL64((a32 ^ d3), 25);
    b30 = ROTL64((a33 ^ d3), 21); b43 = ROTL64((a34 ^ d3), 56); b03 = ROTL64((a40 ^ d4), 27);
    b11 = ROTL64((a41 ^ d4), 20); b24 = ROTL64((a42 ^ d4), 39); b32 = ROTL64((a43 ^ d4), 8);
    b40 = ROTL64((a44 ^ d4), 14);
    a00 = b00 ^ (~b10 & b20); a10 = b10 ^ (~b20 & b30); a20 = b20 ^ (~b30 & b40);
    a30 = b30 ^ (~b40 & b00); a40 = b40 ^ (~b00 & b10); a01 = b01 ^ (~b11 & b21);
    a11 = b11 ^ (~b21 & b31); a21 = b21 ^ (~b31 & b41); a31 = b31 ^ (~b41 & b01);
    a41 = b41 ^ (~b01 & b11); a02 = b02 ^ (~b12 & b22); a12 = b12 ^ (~b22 & b32);
    a22 = b22 ^ (~b32 & b42); a32 = b32 ^ (~b42 & b02); a42 = b42 ^ (~b02 & b12);
    a03 = b03 ^ (~b13 & b23); a13 = b13 ^ (~b23 & b33); a23 = b23 ^ (~b33 & b43);
    a33 = b33 ^ (~b43 & b03); a43 = b43 ^ (~b03 & b13); a04 = b04 ^ (~b14 & b24);
    a14 = b14 ^ (~b24 & b34); a24 = b24 ^ (~b34 & b44); a34 = b34 ^ (~b44 & b04);
    a44 = b44 ^ (~b04 & b14);
    a00 ^= RC[r];
  }
  st[0] = a00; st[1] = a10; st[2] = a20; st[3] = a30; st[4] = a40; st[5] = a01; st[6] = a11;
  st[7] = a21; st[8] = a31; st[9] = a41; st[10] = a02; st[11] = a12; st[12] = a22;
  st[13] = a32; st[14] = a42; st[15] = a03; st[16] = a13; st[17] = a23; st[18] = a33;
  st[19] = a43; st[20] = a04; st[21] = a14; st[22] = a24; st[23] = a34; st[24] = a44;
}


/* keccak256 (Ethereum padding 0x01), little-endian hosts only (checked by the Python loader). */
void ledger_keccak256(const uint8_t *in, size_t len, uint8_t *out) {
  uint64_t st[25];
  uint8_t *s = (uint8_t *)st;
  memset(st, 0, sizeof st);
  while (len >= 136) {
    for (int i = 0; i < 136; i++) s[i] ^= in[i];
    keccakf(st);
    in += 136;
    len -= 136;
  }
  for (size_t i = 0; i < len; i++) s[i] ^= in[i];
  s[len] ^= 0x01;
  s[135] ^= 0x80;
  keccakf(st);
  memcpy(out, s, 32);
}

/* Work on large batches is split over `threads` POSIX threads (ctypes releases the GIL). */
#define PARALLEL_MIN 8192

typedef struct { const uint8_t *in; size_t start, end, width; uint8_t *out; } dh_job;

static void *dh_worker(void *arg) {
  dh_job *job = (dh_job *)arg;
  uint8_t tmp[32];
  for (size_t i = job->start; i < job->end; i++) {
    ledger_keccak256(job->in + i * job->width, job->width, tmp);
    ledger_keccak256(tmp, 32, job->out + i * 32);
  }
  return NULL;
}

/* out[i] = keccak256(keccak256(in[i*width .. (i+1)*width])) */
void ledger_double_hash_fixed(const uint8_t *in, size_t n, size_t width, uint8_t *out, int threads) {
  dh_job jobs[MAX_THREADS];
  pthread_t ids[MAX_THREADS];
  int t = (n < PARALLEL_MIN || threads < 1) ? 1 : (threads > MAX_THREADS ? MAX_THREADS : threads);
  for (int k = 0; k < t; k++) {
    jobs[k].in = in; jobs[k].width = width; jobs[k].out = out;
    jobs[k].start = n * k / t; jobs[k].end = n * (k + 1) / t;
  }
  int started = 0;
  for (int k = 1; k < t; k++) {
    if (pthread_create(&ids[k], NULL, dh_worker, &jobs[k]) != 0) break;
    started = k;
  }
  dh_worker(&jobs[0]);
  for (int k = started + 1; k < t; k++) dh_worker(&jobs[k]); /* threads that failed to start */
  for (int k = 1; k <= started; k++) pthread_join(ids[k], NULL);
}

static void node_hash(const uint8_t *a, const uint8_t *b, uint8_t *out) {
  uint8_t buf[64];
  if (memcmp(a, b, 32) <= 0) { memcpy(buf, a, 32); memcpy(buf + 32, b, 32); }
  else { memcpy(buf, b, 32); memcpy(buf + 32, a, 32); }
  ledger_keccak256(buf, 64, out);
}

typedef struct { uint64_t key; const uint8_t *hash; uint32_t index; } entry;

static int cmp_entry(const void *x, const void *y) {
  const entry *a = (const entry *)x, *b = (const entry *)y;
  if (a->key != b->key) return a->key < b->key ? -1 : 1;
  int c = memcmp(a->hash, b->hash, 32);
  if (c) return c;
  return (a->index > b->index) - (a->index < b->index); /* stable, like JS Array.sort */
}

typedef struct { uint8_t *tree; size_t lo, hi; } tree_job;

static void *tree_worker(void *arg) {
  tree_job *job = (tree_job *)arg;
  for (size_t i = job->lo; i < job->hi; i++)
    node_hash(job->tree + 32 * (2 * i + 1), job->tree + 32 * (2 * i + 2), job->tree + 32 * i);
  return NULL;
}

/* OpenZeppelin makeMerkleTree: leaves (n x 32, value order) -> tree ((2n-1) x 32) and, for
   each value, its tree index. Returns 0, or -1 on allocation failure. */
int ledger_build_tree(const uint8_t *leaves, size_t n, int sort_leaves, uint8_t *tree,
                      uint32_t *tree_index, int threads) {
  size_t size = 2 * n - 1;
  entry *order = (entry *)malloc(n * sizeof(entry));
  if (!order) return -1;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *h = leaves + 32 * i;
    uint64_t key = 0;
    for (int k = 0; k < 8; k++) key = (key << 8) | h[k];
    order[i].key = key; order[i].hash = h; order[i].index = (uint32_t)i;
  }
  if (sort_leaves) qsort(order, n, sizeof(entry), cmp_entry);
  for (size_t pos = 0; pos < n; pos++) {
    size_t t = size - 1 - pos;
    memcpy(tree + 32 * t, order[pos].hash, 32);
    tree_index[order[pos].index] = (uint32_t)t;
  }
  free(order);
  int t = threads < 1 ? 1 : (threads > MAX_THREADS ? MAX_THREADS : threads);
  /* nodes [lo, hi) depend only on nodes >= hi, so each such range can be split over threads */
  for (size_t hi = n - 1, lo; hi > 0; hi = lo) {
    lo = hi / 2;
    tree_job jobs[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    int parts = (hi - lo < PARALLEL_MIN) ? 1 : t, started = 0;
    for (int k = 0; k < parts; k++) {
      jobs[k].tree = tree;
      jobs[k].lo = lo + (hi - lo) * k / parts; jobs[k].hi = lo + (hi - lo) * (k + 1) / parts;
    }
    for (int k = 1; k < parts; k++) {
      if (pthread_create(&ids[k], NULL, tree_worker, &jobs[k]) != 0) break;
      started = k;
    }
    tree_worker(&jobs[0]);
    for (int k = started + 1; k < parts; k++) tree_worker(&jobs[k]);
    for (int k = 1; k <= started; k++) pthread_join(ids[k], NULL);
  }
  return 0;
}

typedef struct {
  const uint8_t *leaves; size_t width; const uint8_t *proofs; const uint64_t *offsets;
  const uint8_t *root; uint8_t *results; size_t start, end;
} verify_job;

static void *verify_worker(void *arg) {
  verify_job *job = (verify_job *)arg;
  uint8_t node[32];
  for (size_t i = job->start; i < job->end; i++) {
    ledger_keccak256(job->leaves + i * job->width, job->width, node);
    ledger_keccak256(node, 32, node);
    for (uint64_t p = job->offsets[i]; p < job->offsets[i + 1]; p++)
      node_hash(node, job->proofs + 32 * p, node);
    job->results[i] = memcmp(node, job->root, 32) == 0;
  }
  return NULL;
}

/* results[i] = 1 if the i-th encoded leaf (width bytes) with proof nodes offsets[i]..offsets[i+1]
   (in units of 32 bytes within `proofs`) leads to `root`, else 0. */
void ledger_verify_many(const uint8_t *leaves, size_t n, size_t width, const uint8_t *proofs,
                        const uint64_t *offsets, const uint8_t *root, uint8_t *results,
                        int threads) {
  verify_job jobs[MAX_THREADS];
  pthread_t ids[MAX_THREADS];
  int t = (n < PARALLEL_MIN / 8 || threads < 1) ? 1 : (threads > MAX_THREADS ? MAX_THREADS : threads);
  int started = 0;
  for (int k = 0; k < t; k++) {
    verify_job j = {leaves, width, proofs, offsets, root, results, n * k / t, n * (k + 1) / t};
    jobs[k] = j;
  }
  for (int k = 1; k < t; k++) {
    if (pthread_create(&ids[k], NULL, verify_worker, &jobs[k]) != 0) break;
    started = k;
  }
  verify_worker(&jobs[0]);
  for (int k = started + 1; k < t; k++) verify_worker(&jobs[k]);
  for (int k = 1; k <= started; k++) pthread_join(ids[k], NULL);
}

/* Fold a proof (count x 32 bytes) onto a leaf; writes the resulting root. */
void ledger_process_proof(const uint8_t *leaf, const uint8_t *proof, size_t count, uint8_t *out) {
  uint8_t node[32];
  memcpy(node, leaf, 32);
  for (size_t i = 0; i < count; i++) node_hash(node, proof + 32 * i, node);
  memcpy(out, node, 32);
}
"""

_lock = threading.Lock()
#: Threads for large batches (the kernels release the GIL); LEDGER_NATIVE_THREADS overrides.
_THREADS = int(os.environ.get("LEDGER_NATIVE_THREADS", "0")) or min(os.cpu_count() or 1, 8)
_loaded: list[NativeKeccak | None] = []


class NativeKeccak:
    """ctypes bindings of the compiled kernels."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        c = ctypes
        lib.ledger_keccak256.argtypes = [c.c_char_p, c.c_size_t, c.c_char_p]
        lib.ledger_keccak256.restype = None
        lib.ledger_double_hash_fixed.argtypes = [c.c_char_p, c.c_size_t, c.c_size_t, c.c_void_p, c.c_int]
        lib.ledger_double_hash_fixed.restype = None
        lib.ledger_build_tree.argtypes = [c.c_char_p, c.c_size_t, c.c_int, c.c_void_p, c.c_void_p, c.c_int]
        lib.ledger_build_tree.restype = c.c_int
        lib.ledger_process_proof.argtypes = [c.c_char_p, c.c_char_p, c.c_size_t, c.c_char_p]
        lib.ledger_process_proof.restype = None
        lib.ledger_verify_many.argtypes = [
            c.c_char_p,
            c.c_size_t,
            c.c_size_t,
            c.c_char_p,
            c.c_void_p,
            c.c_char_p,
            c.c_void_p,
            c.c_int,
        ]
        lib.ledger_verify_many.restype = None

    def keccak256(self, data: bytes) -> bytes:
        """Single keccak256 (used by the self-test)."""
        out = ctypes.create_string_buffer(32)
        self._lib.ledger_keccak256(data, len(data), out)
        return out.raw

    def double_hash_fixed(self, encoded: bytes, width: int) -> bytes:
        """``keccak256(keccak256(row))`` for each ``width``-byte row of ``encoded``."""
        n = len(encoded) // width if width else 0
        out = bytearray(32 * n)
        buf = (ctypes.c_char * len(out)).from_buffer(out)
        self._lib.ledger_double_hash_fixed(encoded, n, width, buf, _THREADS)
        del buf
        return bytes(out)

    def build_tree(self, leaves: bytes, *, sort_leaves: bool) -> tuple[bytearray, list[int]]:
        """OpenZeppelin layout: ``(tree buffer of (2n-1)*32 bytes, tree index per value)``."""
        n = len(leaves) // 32
        tree = bytearray(32 * (2 * n - 1))
        index = array.array("I", bytes(4 * n))
        if index.itemsize != 4:  # pragma: no cover - every mainstream ABI has 32-bit unsigned int
            raise RuntimeError("unexpected C unsigned int size")
        tree_buf = (ctypes.c_char * len(tree)).from_buffer(tree)
        index_buf = (ctypes.c_uint32 * n).from_buffer(index)
        status = self._lib.ledger_build_tree(leaves, n, int(sort_leaves), tree_buf, index_buf, _THREADS)
        del tree_buf, index_buf
        if status != 0:
            raise MemoryError("native Merkle build could not allocate")
        return tree, index.tolist()

    def verify_many(self, encoded: bytes, width: int, proofs: bytes, offsets: list[int], root: bytes) -> bytearray:
        """For each ``width``-byte encoded leaf: 1 if its proof leads to ``root``, else 0."""
        n = len(offsets) - 1
        results = bytearray(n)
        offset_array = array.array("Q", offsets)
        results_buf = (ctypes.c_char * max(n, 1)).from_buffer(results) if n else None
        offsets_buf = (ctypes.c_uint64 * len(offset_array)).from_buffer(offset_array)
        self._lib.ledger_verify_many(encoded, n, width, proofs, offsets_buf, root, results_buf, _THREADS)
        del results_buf, offsets_buf
        return results

    def process_proof(self, leaf: bytes, proof: bytes) -> bytes:
        """Fold concatenated 32-byte proof nodes onto ``leaf``."""
        out = ctypes.create_string_buffer(32)
        self._lib.ledger_process_proof(leaf, proof, len(proof) // 32, out)
        return out.raw


def _cache_dir() -> Path:
    configured = os.environ.get("LEDGER_NATIVE_CACHE")
    if configured:
        return Path(configured)
    home = Path.home() / ".cache" / "ledger_api"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if os.access(home, os.W_OK):
            return home
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"ledger_api-{os.getuid() if hasattr(os, 'getuid') else 0}"


def _compile(target: Path) -> bool:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        source = Path(tmp) / "keccak.c"
        source.write_text(_C_SOURCE, encoding="utf-8")
        output = Path(tmp) / target.name
        try:
            result = subprocess.run(
                [compiler, "-O2", "-shared", "-fPIC", "-pthread", "-o", str(output), str(source)],
                capture_output=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return False
        if result.returncode != 0 or not output.exists():
            return False
        os.replace(output, target)
    return True


def _self_test(native: NativeKeccak) -> bool:
    for sample in (b"", b"abc", bytes(range(256)) * 3, b"\xff" * 135, b"\x01" * 136):
        if native.keccak256(sample) != keccak_256(sample).digest():
            return False
    a, b = keccak_256(b"a").digest(), keccak_256(b"b").digest()
    pair = a + b if a < b else b + a
    expected: bytes = keccak_256(pair).digest()
    return native.process_proof(a, b) == expected


def load() -> NativeKeccak | None:
    """The compiled kernels, or ``None`` when unavailable (callers fall back to pure Python)."""
    with _lock:
        if _loaded:
            return _loaded[0]
        native: NativeKeccak | None = None
        if os.environ.get("LEDGER_NATIVE_KECCAK", "1") != "0" and sys.byteorder == "little":
            digest = hashlib.sha256(_C_SOURCE.encode()).hexdigest()[:16]
            suffix = ".dylib" if sys.platform == "darwin" else ".so"
            target = _cache_dir() / f"keccak-{digest}-{sys.platform}{suffix}"
            try:
                if target.exists() or _compile(target):
                    candidate = NativeKeccak(ctypes.CDLL(str(target)))
                    native = candidate if _self_test(candidate) else None
            except OSError:
                native = None
        _loaded.append(native)
        return native
