"""The stubs describe the native module as built, and the package is marked typed."""

import ast
import importlib.resources
import pathlib

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
