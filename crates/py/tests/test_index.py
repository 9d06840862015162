"""The exact index against brute force computed in NumPy (an independent truth)."""

import numpy as np
import pytest

import bulwark


def truth(codes: np.ndarray, ids: np.ndarray, q: np.ndarray, radius: int):
    d = np.unpackbits(codes ^ q, axis=1).sum(axis=1)
    hit = d <= radius
    return sorted(zip(d[hit].tolist(), ids[hit].tolist()))


def clustered(rng, n: int, centres: int = 50, flips: int = 40):
    """Codes near a few centres, so every radius has neighbours to find."""
    base = rng.integers(0, 256, (centres, 32), dtype=np.uint8)
    codes = base[rng.integers(0, centres, n)]
    bits = np.unpackbits(codes, axis=1)
    for row in bits:
        row[rng.choice(256, rng.integers(0, flips), replace=False)] ^= 1
    return np.packbits(bits, axis=1), base


def as_pairs(matches):
    return sorted((m.distance, m.id) for m in matches)


@pytest.mark.parametrize("n", [300, 5000])
def test_search_equals_brute_force_at_every_radius(n):
    rng = np.random.default_rng(n)
    codes, centres = clustered(rng, n)
    ids = rng.integers(0, 2**63, n, dtype=np.uint64)
    ids[:10] = ids[10:20]  # duplicate ids: every entry still comes back
    ix = bulwark.Index.build(codes, ids)
    assert len(ix) == n
    queries, _ = clustered(rng, 40)
    queries = np.concatenate([queries, centres[:5], codes[:5]])
    for radius in (0, 8, 31, 48, 90):
        for q in queries:
            assert as_pairs(ix.search(q.tobytes(), radius)) == truth(codes, ids, q, radius), radius
        many = ix.search_many(queries, radius)
        assert [as_pairs(h) for h in many] == [truth(codes, ids, q, radius) for q in queries]


def test_add_and_remove_change_results_at_once():
    rng = np.random.default_rng(3)
    codes, _ = clustered(rng, 2000)
    ids = np.arange(2000, dtype=np.uint64)
    ix = bulwark.Index.build(codes[:1000], ids[:1000])
    ix.add_many(codes[1000:1500], ids[1000:1500])
    for i in range(1500, 2000):
        ix.add(int(ids[i]), codes[i].tobytes().hex())
    removed = set(range(0, 2000, 7))
    for i in removed:
        assert ix.remove(i)
    assert not ix.remove(10**12)
    keep = np.array([i not in removed for i in range(2000)])
    assert len(ix) == int(keep.sum())
    for q in codes[::97]:
        want = truth(codes[keep], ids[keep], q, 31)
        assert as_pairs(ix.search(q.tobytes(), 31)) == want
    ix.merge()
    for q in codes[::97]:
        assert as_pairs(ix.search(q.tobytes(), 31)) == truth(codes[keep], ids[keep], q, 31)


def test_saved_file_is_memory_mapped_back_and_damage_is_refused(tmp_path):
    rng = np.random.default_rng(5)
    codes, _ = clustered(rng, 3000)
    ix = bulwark.Index.build(codes)  # ids default to 0..n-1
    ix.remove(17)
    path = tmp_path / "bank.idx"
    ix.save(path)
    back = bulwark.Index.open(path)
    assert len(back) == 2999
    for q in codes[::50]:
        assert back.search(q.tobytes(), 31) == ix.search(q.tobytes(), 31)
    assert bulwark.Index.from_bytes(path.read_bytes()).search(codes[0].tobytes(), 20) == ix.search(
        codes[0].tobytes(), 20
    )
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.idx"
    bad.write_bytes(bytes(data))
    with pytest.raises(bulwark.IndexFileError):
        bulwark.Index.open(bad)
    with pytest.raises(bulwark.IndexFileError, match="header"):
        bulwark.Index.from_bytes(b"\0" * 16)


def test_hex_lists_and_the_rust_brute_force_agree():
    rng = np.random.default_rng(9)
    codes, _ = clustered(rng, 200)
    hexes = [c.tobytes().hex() for c in codes]
    ix = bulwark.Index.build(hexes, list(range(100, 300)))
    q = hexes[3]
    assert as_pairs(ix.search(q, 40)) == as_pairs(bulwark.brute_force(hexes, q, 40, ids=list(range(100, 300))))
    assert ix.search(q, 0)[0] == bulwark.Match(103, 0)


def test_bad_arguments():
    ix = bulwark.Index()
    with pytest.raises(ValueError, match="over 256"):
        ix.search(b"\0" * 32, 300)
    with pytest.raises(ValueError, match="32 bytes"):
        ix.add(1, b"\0" * 31)
    with pytest.raises(ValueError, match=r"\(n, 32\) uint8"):
        bulwark.Index.build(np.zeros((3, 16), np.uint8))
    with pytest.raises(ValueError, match="non-negative"):
        bulwark.Index.build(np.zeros((2, 32), np.uint8), np.array([1, -1]))


def test_concurrent_searches_and_adds_from_threads():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(21)
    codes, _ = clustered(rng, 4000)
    ids = np.arange(4000, dtype=np.uint64)
    ix = bulwark.Index.build(codes[:2000], ids[:2000])

    def add(i):
        ix.add(int(ids[i]), codes[i].tobytes())

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(add, range(2000, 4000)))
        results = list(pool.map(lambda q: as_pairs(ix.search(q.tobytes(), 31)), codes[::101]))
    assert len(ix) == 4000
    # Searches that ran during the adds see at least the base; afterwards, everything.
    for q, got in zip(codes[::101], results):
        assert set(truth(codes[:2000], ids[:2000], q, 31)) <= set(got)
        assert as_pairs(ix.search(q.tobytes(), 31)) == truth(codes, ids, q, 31)
