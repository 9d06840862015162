#!/usr/bin/env python3
"""Time faiss-cpu on the codes and queries that `bulwark bench index --export DIR` wrote.

Same data, same radius, one thread, side by side with Bulwark's figures:
  * IndexBinaryFlat range search (exact, brute force);
  * IndexBinaryMultiHash as HMA configures it (nhash=16, b=16, nflip=0): fast, not exact;
  * IndexBinaryMultiHash with nflip = radius // 16: exact by the pigeonhole principle
    (faiss's best exact configuration we found).
Recall is measured against the flat index on the first --recall-queries queries.

Usage: python3 bench/index/faiss_compare.py DIR --radius 31 [--recall-queries 500]
"""
import argparse, json, sys, time
import numpy as np
import faiss

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--radius", type=int, default=31)
ap.add_argument("--recall-queries", type=int, default=500)
ap.add_argument("--max-queries", type=int, default=2000)
ap.add_argument("--skip-flat", action="store_true")
a = ap.parse_args()
faiss.omp_set_num_threads(1)
codes = np.fromfile(f"{a.dir}/codes.bin", dtype=np.uint8).reshape(-1, 32)
queries = np.fromfile(f"{a.dir}/queries.bin", dtype=np.uint8).reshape(-1, 32)[: a.max_queries]
r = a.radius
out = {"size": len(codes), "queries": len(queries), "radius": r, "configs": []}

def run(name, index, build_s, nq):
    q = queries[:nq]
    t = time.perf_counter()
    # faiss binary range search returns distances strictly below the radius.
    lims, D, I = index.range_search(q, r + 1)
    s = time.perf_counter() - t
    res = [set(I[lims[i]:lims[i + 1]].tolist()) for i in range(len(q))]
    return {"name": name, "build_seconds": build_s, "queries_per_second_one_core": len(q) / s,
            "queries_timed": len(q)}, res

truth = None
k = min(a.recall_queries, len(queries))
if not a.skip_flat:
    t = time.perf_counter(); flat = faiss.IndexBinaryFlat(256); flat.add(codes); b = time.perf_counter() - t
    nq = min(len(queries), max(k, 200))
    row, res = run("faiss IndexBinaryFlat (exact)", flat, b, nq)
    truth = res[:k]
    row["recall"] = 1.0
    out["configs"].append(row)
    del flat

for nflip, label in [(0, "faiss IndexBinaryMultiHash 16x16 nflip=0 (HMA)"),
                     (r // 16, f"faiss IndexBinaryMultiHash 16x16 nflip={r // 16} (exact)")]:
    t = time.perf_counter()
    ix = faiss.IndexBinaryMultiHash(256, 16, 16)
    ix.nflip = nflip
    ix.add(codes)
    b = time.perf_counter() - t
    row, res = run(label, ix, b, len(queries))
    if truth is not None:
        want = sum(len(x) for x in truth)
        got = sum(len(x & y) for x, y in zip(res[:k], truth))
        row["recall"] = got / want if want else 1.0
    out["configs"].append(row)
    del ix
print(json.dumps(out))
