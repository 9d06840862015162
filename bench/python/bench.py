#!/usr/bin/env python3
"""Bulwark from Python against `pdqhash` (PDQ) and faiss-cpu (index), in one run.

Usage (a release wheel installed; shared/ beside the clone or BULWARK_CONFORMANCE_DIR set):

    pip install pdqhash faiss-cpu numpy pillow
    nice python3 bench/python/bench.py [--codes 200000] [--queries 1000]

PDQ: a ~1024x768 and a 12 MP JPEG (quality 90) made from a benign conformance
photo, as `bulwark bench hash` does; per image *including decode*: Bulwark's
`hash_bytes` against PIL decode + `pdqhash.compute` (Meta's C++ core), run
alternately on one thread (medians, the median of the paired ratios and the
ratio of the fastest runs, and the median of the paired ratios of thread CPU
time), then Bulwark's `hash_bytes_many` on every core.
Index: clustered random codes, queries at radius 31; Bulwark's `Index`
against faiss `IndexBinaryMultiHash` as HMA configures it (16x16, nflip 0),
exact by pigeonhole (nflip 1) and `IndexBinaryFlat`, one thread each (faiss
with `omp_set_num_threads(1)`; Bulwark's `search` in a loop), plus recall.
"""

import argparse
import io
import os
import pathlib
import platform
import statistics
import time

import faiss
import numpy as np
import pdqhash
from PIL import Image

import bulwark


def conformance() -> pathlib.Path:
    env = os.environ.get("BULWARK_CONFORMANCE_DIR")
    return pathlib.Path(env) if env else pathlib.Path(__file__).resolve().parents[3] / "shared" / "conformance"


def paired_ms(fa, fb, runs: int):
    """Runs a and b alternately (a first on even runs, b first on odd), so
    a loaded machine's changing load falls on both alike: the median of each
    in ms, the median of the per-pair ratios b/a, and the ratio of the
    fastest runs (the runs the machine's other load disturbed least)."""
    fa(), fb()  # warm up
    ta, tb, ca, cb = [], [], [], []
    for i in range(runs):
        for f, ts, cs in ((fa, ta, ca), (fb, tb, cb)) if i % 2 == 0 else ((fb, tb, cb), (fa, ta, ca)):
            c = time.thread_time()
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
            cs.append(time.thread_time() - c)
    ratios = [b / a for a, b in zip(ta, tb)]
    # CPU time of this thread (both sides run on it: Bulwark releases the GIL
    # but computes on the calling thread), which other processes' load
    # disturbs less than wall time.
    cpu = [b / a for a, b in zip(ca, cb) if a > 0]
    return (statistics.median(ta) * 1000, statistics.median(tb) * 1000, statistics.median(ratios),
            min(tb) / min(ta), statistics.median(cpu) if cpu else float("nan"))


def pdqhash_hex(data: bytes):
    arr = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    bits, q = pdqhash.compute(arr)
    return "%064x" % int("".join(str(b) for b in bits), 2), q


def bench_pdq(runs: int) -> None:
    src = Image.open(conformance() / "pdq/images/bridge-mods/aaa-orig.jpg").convert("RGB")
    print("| image | Bulwark `hash_bytes` | PIL + `pdqhash.compute` | ratio of medians | median of paired ratios | ratio of fastest runs | median of paired CPU-time ratios | bit-exact | Bulwark `hash_bytes_many`, all cores |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for w, h in ((1024, 768), (4000, 3000)):
        buf = io.BytesIO()
        src.resize((w, h), Image.BICUBIC).save(buf, "JPEG", quality=90)
        data = buf.getvalue()
        ours = bulwark.hash_bytes(data)
        theirs = pdqhash_hex(data)
        n = runs if w < 2000 else max(3, runs // 5)
        a, b, paired, fastest, cpu = paired_ms(
            lambda: bulwark.hash_bytes(data),
            lambda: pdqhash.compute(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))),
            n,
        )
        batch = [data] * (4 * (os.cpu_count() or 1) * (8 if w < 2000 else 1))
        t = time.perf_counter()
        bulwark.hash_bytes_many(batch)
        rate = len(batch) / (time.perf_counter() - t)
        exact = (ours.hash, ours.quality) == theirs
        print(f"| {w}x{h} | {a:.2f} ms | {b:.2f} ms | **{b / a:.1f}x** | {paired:.1f}x | {fastest:.1f}x | {cpu:.1f}x | {exact} | {rate:.1f} images/s |")


def clustered(rng, n: int, centres: int, flips: int) -> np.ndarray:
    base = rng.integers(0, 256, (centres, 32), dtype=np.uint8)
    codes = base[rng.integers(0, centres, n)]
    noise = np.packbits(rng.random((n, 256)) < flips / 256, axis=1)
    return codes ^ noise


def bench_index(n: int, nq: int, radius: int) -> None:
    rng = np.random.default_rng(1)
    codes = clustered(rng, n, centres=n // 20, flips=20)
    queries = clustered(rng, nq, centres=nq, flips=20)
    queries[: nq // 2] = codes[rng.integers(0, n, nq // 2)] ^ np.packbits(rng.random((nq // 2, 256)) < 0.06, axis=1)
    faiss.omp_set_num_threads(1)
    print(f"\n{n:,} codes, {nq:,} queries, radius {radius}; one thread each\n")
    print("| index | queries/s | recall | build |")
    print("| --- | ---: | ---: | ---: |")
    t = time.perf_counter()
    ix = bulwark.Index.build(codes)
    build = time.perf_counter() - t
    t = time.perf_counter()
    truth = [ix.search(q.tobytes(), radius) for q in queries]
    qps = nq / (time.perf_counter() - t)
    total = sum(len(x) for x in truth)
    print(f"| Bulwark `Index` (exact) | {qps:,.0f} | 1.000 | {build:.2f} s (all cores) |")
    t = time.perf_counter()
    ix.search_many(queries, radius)
    many = nq / (time.perf_counter() - t)
    print(f"| Bulwark `Index.search_many`, all cores | {many:,.0f} | 1.000 | – |")
    want = [{m.id for m in x} for x in truth]
    for label, make in (
        ("faiss MultiHash 16x16, nflip 0 (HMA)", lambda: faiss.IndexBinaryMultiHash(256, 16, 16)),
        ("faiss MultiHash 16x16, nflip 1 (exact)", lambda: faiss.IndexBinaryMultiHash(256, 16, 16)),
        ("faiss IndexBinaryFlat (exact)", lambda: faiss.IndexBinaryFlat(256)),
    ):
        f = make()
        if "nflip 1" in label:
            f.nflip = 1
        t = time.perf_counter()
        f.add(codes)
        fb = time.perf_counter() - t
        t = time.perf_counter()
        lims, _, ids = f.range_search(queries, radius + 1)
        fq = nq / (time.perf_counter() - t)
        found = sum(len(want[i] & set(ids[lims[i] : lims[i + 1]].tolist())) for i in range(nq))
        print(f"| {label} | {fq:,.0f} | {found / max(total, 1):.3f} | {fb:.2f} s |")
    print(f"\n{total:,} true matches; Bulwark kernel: {bulwark.INDEX_KERNEL}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--codes", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--radius", type=int, default=31)
    ap.add_argument("--pdq-only", action="store_true", help="skip the index benchmark")
    a = ap.parse_args()
    print(f"bulwark {bulwark.__version__}, Python {platform.python_version()}, numpy {np.__version__}, "
          f"pdqhash {getattr(pdqhash, '__version__', '?')}, faiss {faiss.__version__}, {os.cpu_count()} cores\n")
    print("load average at start: %.2f %.2f %.2f\n" % os.getloadavg())
    bench_pdq(a.runs)
    if not a.pdq_only:
        bench_index(a.codes, a.queries, a.radius)
    print("\nload average at end: %.2f %.2f %.2f" % os.getloadavg())
