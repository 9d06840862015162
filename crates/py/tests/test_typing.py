"""The stubs describe the native module as built, and the package is marked
typed; mypy --strict accepts a typed use of the whole API (sync and asyncio
client included) and refuses wrong uses; stubtest compares the native
module's stub with the module itself."""

import ast
import importlib.resources
import os
import pathlib
import re
import subprocess
import sys

import pytest

import bulwark
from bulwark import _bulwark


def test_stub_names_match_the_native_module():
    stub = pathlib.Path(__file__).resolve().parents[1] / "python" / "bulwark" / "_bulwark.pyi"
    tree = ast.parse(stub.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    public = {n for n in dir(_bulwark) if not n.startswith("_")} | {"__version__"}
    assert {n for n in names if not n.startswith("_") or n == "__version__"} == public


def test_package_ships_py_typed_and_stubs():
    files = {p.name for p in importlib.resources.files("bulwark").iterdir()}
    assert {"py.typed", "_bulwark.pyi", "client.py", "threatexchange.py"} <= files
    assert all(hasattr(bulwark, n) for n in bulwark.__all__)


TYPING = pathlib.Path(__file__).resolve().parent / "typecheck"


def _mypy(tmp_path, *args):
    # Run from a directory without the source tree, so mypy checks the
    # installed package (its py.typed, stubs and annotations) like a user's would.
    env = {**os.environ, "MYPYPATH": ""}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )


def test_mypy_strict_accepts_typed_use_and_refuses_misuse(tmp_path):
    usage, misuse = TYPING / "usage.py", TYPING / "misuse.py"
    # The installed package's own code (client, plug-in, wrappers over the
    # stub) under --strict as well.
    own = _mypy(tmp_path, "--strict", "-p", "bulwark")
    assert own.returncode == 0 and "Success" in own.stdout, own.stdout + own.stderr
    r = _mypy(tmp_path, "--strict", "--no-error-summary", "--show-absolute-path", str(usage), str(misuse))
    errors = [ln for ln in r.stdout.splitlines() if ": error:" in ln]
    elsewhere = [ln for ln in errors if not ln.startswith(str(misuse))]
    assert elsewhere == [], r.stdout
    want = {i + 1 for i, ln in enumerate(misuse.read_text().splitlines()) if ln.endswith("# error")}
    got = {int(m.group(1)) for ln in errors if (m := re.match(re.escape(str(misuse)) + r":(\d+):", ln))}
    assert got == want, r.stdout


def test_stubtest_native_module(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "bulwark._bulwark", "--mypy-config-file", os.devnull],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_runs_against_the_installed_wheel():
    """In CI (BULWARK_PY_EXPECT_WHEEL=<platform tag>, e.g. manylinux_2_28):
    the package under test is the installed wheel, not the source tree, and
    the wheel is abi3 with that platform tag."""
    import importlib.metadata

    want = os.environ.get("BULWARK_PY_EXPECT_WHEEL")
    if not want:
        pytest.skip("BULWARK_PY_EXPECT_WHEEL is not set (CI sets it)")
    source = pathlib.Path(__file__).resolve().parents[1] / "python"
    assert source not in pathlib.Path(bulwark.__file__).resolve().parents
    dist = importlib.metadata.distribution("bulwark")
    tags = [ln.split(":", 1)[1].strip() for ln in (dist.read_text("WHEEL") or "").splitlines() if ln.startswith("Tag:")]
    assert tags and all(tg.startswith("cp39-abi3-") and want in tg for tg in tags), tags
