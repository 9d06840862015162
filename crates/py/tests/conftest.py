"""Shared fixtures: the conformance vectors and a started `bulwark serve`."""

import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]


def conformance_dir() -> pathlib.Path:
    """As crates/pdq/tests/conformance.rs: BULWARK_CONFORMANCE_DIR, else shared/ beside the clone."""
    env = os.environ.get("BULWARK_CONFORMANCE_DIR")
    d = pathlib.Path(env) if env else REPO.parent / "shared" / "conformance"
    assert d.is_dir(), f"conformance vectors not found at {d}: clone beside shared/ or set BULWARK_CONFORMANCE_DIR"
    return d


@pytest.fixture(scope="session")
def conformance() -> pathlib.Path:
    return conformance_dir()


def bulwark_bin() -> pathlib.Path:
    env = os.environ.get("BULWARK_BIN")
    if env:
        return pathlib.Path(env)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    for profile in ("debug", "release"):
        p = target / profile / "bulwark"
        if p.exists():
            return p
    return target / "debug" / "bulwark"


class Server:
    def __init__(self, url: str, data_dir: pathlib.Path, admin: str, binary: pathlib.Path) -> None:
        self.url = url
        self.data_dir = data_dir
        self.admin = admin
        self.binary = binary

    def cli(self, *args: str) -> str:
        out = subprocess.run([str(self.binary), *args], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def key(self, role: str) -> str:
        return self.cli("keys", "create", "--role", role, "--data-dir", str(self.data_dir))


@pytest.fixture(scope="session")
def server():
    """`bulwark serve` on a free port with a temporary data dir (SQLite)."""
    binary = bulwark_bin()
    if not binary.exists():
        if os.environ.get("BULWARK_PY_REQUIRE_SERVER") == "1":
            pytest.fail(f"bulwark binary not found at {binary} (cargo build -p bulwark, or set BULWARK_BIN)")
        pytest.skip(f"bulwark binary not found at {binary}")
    data = pathlib.Path(tempfile.mkdtemp(prefix="bulwark-py-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [str(binary), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "bulwark serve exited"
                assert time.monotonic() < deadline, "bulwark serve did not start"
                time.sleep(0.05)
        admin = (data / "admin.key").read_text().strip()
        yield Server(f"http://127.0.0.1:{port}", data, admin, binary)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)
