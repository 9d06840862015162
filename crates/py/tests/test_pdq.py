"""PDQ through Python against Meta's reference outputs (shared/conformance/pdq)."""

import csv
import pathlib

import numpy as np
import pytest
from PIL import Image

import bulwark


def rows(conformance: pathlib.Path, name: str):
    with open(conformance / "pdq" / name, newline="") as f:
        return [r for r in csv.reader(f) if r]


def synthetic(w: int, h: int, ch: int, seed: int, kx: int, ky: int, mask: int, flat: bool) -> np.ndarray:
    """The README's pixel formula: one LCG step per byte in y, x, c order."""
    n = w * h * ch
    if flat:
        return np.full((h, w, ch) if ch > 1 else (h, w), 128, np.uint8)
    a, c, m = 1664525, 1013904223, 1 << 32
    block = min(n, 4096)
    s = np.empty(n, np.uint64)
    v = seed
    for i in range(block):
        v = (v * a + c) % m
        s[i] = v
    # Jump `block` steps at once: s[i + block] = A * s[i] + C (mod 2^32).
    A, C = 1, 0
    for _ in range(block):
        A, C = (A * a) % m, (C * a + c) % m
    for start in range(block, n, block):
        prev = s[start - block : start]
        k = min(block, n - start)
        s[start : start + k] = (prev[:k] * np.uint64(A) + np.uint64(C)) % np.uint64(m)
    idx = np.arange(n, dtype=np.uint64)
    cc = idx % ch
    x = (idx // ch) % w
    y = idx // (ch * w)
    px = ((x * kx + y * ky + cc * 85) & 255) ^ ((s >> np.uint64(24)) & np.uint64(mask))
    px = px.astype(np.uint8)
    return px.reshape((h, w, ch)) if ch > 1 else px.reshape((h, w))


def test_synthetic_core_vectors_through_numpy(conformance):
    table = rows(conformance, "pdq_synthetic_core_vectors.csv")
    assert len(table) > 20
    for r in table[1:]:
        w, h, ch, seed, kx, ky, mask, flat = (int(x) for x in r[:8])
        px = synthetic(w, h, ch, seed, kx, ky, mask, flat == 1)
        got = bulwark.hash_array(px)
        assert (got.hash, got.quality) == (r[9], int(r[8])), f"{w}x{h}x{ch} seed {seed}"
        dih = bulwark.hash_array_dihedral(px)
        assert dih.quality == int(r[10])
        assert list(dih.hashes) == r[11:19], f"{w}x{h}x{ch} seed {seed} dihedral"


@pytest.mark.parametrize(
    "csv_name,mode", [("pdq_cli_expected.csv", "reference-cli"), ("pdq_core_fullres_expected.csv", "full")]
)
def test_image_rows_from_files_and_bytes(conformance, csv_name, mode):
    table = rows(conformance, csv_name)
    assert table
    images = conformance / "pdq" / "images"
    for i, (want_hash, want_q, path) in enumerate(table):
        got = bulwark.hash_file(images / path, mode)
        assert got == (want_hash, int(want_q)), path
        if i % 8 == 0:
            assert bulwark.hash_bytes((images / path).read_bytes(), mode) == got


def test_reference_cli_dihedral_rows(conformance):
    images = conformance / "pdq" / "images"
    for r in rows(conformance, "pdq_cli_dihedral_expected.csv"):
        got = bulwark.hash_file_dihedral(images / r[9], "reference-cli")
        assert list(got.hashes) == r[:8], r[9]
        assert got.quality == int(r[8])
        assert got.as_dict()["orig"] == r[0]


def test_batch_on_all_cores_equals_one_by_one_and_returns_errors(conformance, tmp_path):
    images = conformance / "pdq" / "images"
    paths = [images / p for _, _, p in rows(conformance, "pdq_core_fullres_expected.csv")][::3]
    bad = tmp_path / "not-an-image.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    got = bulwark.hash_files(paths + [bad])
    assert got[:-1] == [bulwark.hash_file(p) for p in paths]
    assert isinstance(got[-1], bulwark.ImageError) and "not-an-image.jpg" in str(got[-1])
    many = bulwark.hash_bytes_many([p.read_bytes() for p in paths[:5]] + [b"nope"])
    assert many[:5] == got[:5] and isinstance(many[5], bulwark.ImageError)


def test_pil_images_and_arrays_hash_like_the_decoder(conformance):
    """PNG pixels are lossless: PIL's decode gives the same pixels, so the same hash."""
    images = conformance / "pdq" / "images"
    pngs = [p for _, _, p in rows(conformance, "pdq_core_fullres_expected.csv") if p.endswith(".png")]
    assert pngs
    for p in pngs:
        want = bulwark.hash_file(images / p)
        with Image.open(images / p) as im:
            assert bulwark.hash_image(im) == want, p
            assert bulwark.hash_image_dihedral(im).hashes[0] == bulwark.hash_file_dihedral(images / p).hashes[0]
            if im.mode in ("RGB", "L"):
                assert bulwark.hash_array(np.asarray(im)) == want, p


def test_alpha_is_dropped_and_stacks_hash_per_frame():
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, rng.integers(0, 256, (40, 60, 1), dtype=np.uint8)], axis=2)
    assert bulwark.hash_array(rgba) == bulwark.hash_array(rgb)
    stack = rng.integers(0, 256, (5, 33, 47, 3), dtype=np.uint8)
    assert bulwark.hash_arrays(stack) == [bulwark.hash_array(f) for f in stack]
    assert bulwark.hash_arrays(stack[..., 0]) == [bulwark.hash_array(f[..., 0]) for f in stack]


def test_distance_is_the_popcount_of_the_xor():
    rng = np.random.default_rng(1)
    for _ in range(50):
        a, b = rng.integers(0, 256, 32, dtype=np.uint8), rng.integers(0, 256, 32, dtype=np.uint8)
        want = int(np.unpackbits(a ^ b).sum())
        assert bulwark.distance(a.tobytes(), b.tobytes()) == want
        assert bulwark.distance(a.tobytes().hex(), b.tobytes().hex()) == want


def test_bad_input_raises_with_the_rust_message(tmp_path):
    with pytest.raises(bulwark.ImageError, match="cannot decode image|unsupported image"):
        bulwark.hash_bytes(b"definitely not an image")
    with pytest.raises(bulwark.ImageError, match="too large"):
        bulwark.hash_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100, max_bytes=10)
    with pytest.raises(ValueError, match="unknown mode"):
        bulwark.hash_bytes(b"x", "fast")
    with pytest.raises(ValueError, match="uint8"):
        bulwark.hash_array(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="shape"):
        bulwark.hash_array(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match="64 hex"):
        bulwark.distance("abc", "def")
    assert issubclass(bulwark.ImageError, bulwark.BulwarkError)
    with pytest.raises(FileNotFoundError):
        bulwark.hash_file(tmp_path / "missing.jpg")


def test_threads_hash_concurrently_with_the_same_results(conformance):
    """Hashing releases the GIL: threads run it side by side, results unchanged."""
    from concurrent.futures import ThreadPoolExecutor

    images = conformance / "pdq" / "images"
    table = rows(conformance, "pdq_core_fullres_expected.csv")[:8]
    data = [(images / p).read_bytes() for _, _, p in table]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(bulwark.hash_bytes, data * 2))
    assert [(g.hash, g.quality) for g in got] == [(h, int(q)) for h, q, _ in table] * 2


def test_hash_files_releases_the_gil_while_it_reads(conformance, tmp_path):
    """`hash_files` blocks reading a named pipe; the pipe's writer is Python
    code on this thread, which can only run if the batch released the GIL.
    (Holding it would deadlock: the join below would time out.)"""
    import os
    import threading

    fifo = tmp_path / "image.fifo"
    os.mkfifo(fifo)
    data = (conformance / "pdq/images/bridge-mods/aaa-orig.jpg").read_bytes()
    out = []
    worker = threading.Thread(target=lambda: out.append(bulwark.hash_files([fifo])))
    worker.start()
    with open(fifo, "wb") as w:  # blocks until the batch opens the pipe
        w.write(data)
    worker.join(120)
    assert not worker.is_alive(), "hash_files held the GIL"
    assert out == [[bulwark.hash_bytes(data)]]


def test_errors_carry_the_cli_messages(tmp_path):
    """An ImageError's message is the one `bulwark hash` prints for the same file."""
    import os
    import subprocess

    from conftest import bulwark_bin

    binary = bulwark_bin()
    if not binary.exists():
        if os.environ.get("BULWARK_PY_REQUIRE_SERVER") == "1":
            pytest.fail(f"bulwark binary not found at {binary}")
        pytest.skip(f"bulwark binary not found at {binary}")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 a truncated benign JPEG header")
    with pytest.raises(bulwark.ImageError) as e:
        bulwark.hash_file(bad)
    cli = subprocess.run([str(binary), "hash", str(bad)], capture_output=True, text=True)
    assert cli.returncode != 0
    assert str(e.value) in cli.stderr, (str(e.value), cli.stderr)
