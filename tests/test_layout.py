"""The code's layout, as the developer map in README.md states it: modules under 500 lines (the
benchmarks' and the sample data builder's too), only ``curator/cli`` prints or exits, the library
layer imports nothing above it, and every package is installed by a plain ``pip install .``
(pyproject.toml lists them by hand)."""

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "curator"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 500
# What only the CLI may call: it alone talks to the terminal and decides the exit status.
TERMINAL = {"print", "exit", "sys.exit", "os._exit", "typer.echo", "typer.Exit", "SystemExit"}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _called(node: ast.AST) -> str:
    func = node.func if isinstance(node, ast.Call) else node
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return ""


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def test_no_module_is_over_500_lines():
    """curator's modules, the benchmarks and the sample data's builder (tests are left out)."""
    scripts = sorted((ROOT / "benchmarks").glob("*.py")) + sorted((ROOT / "sample_data").glob("*.py"))
    long = {_rel(p): n for p in MODULES + scripts if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by concept (modules stay under {MAX_LINES} lines): {long}"


@pytest.mark.parametrize("path", [p for p in MODULES if p.parent.name != "cli" and p.name != "__main__.py"],
                         ids=_rel)
def test_only_the_cli_prints_or_exits(path):
    tree = ast.parse(path.read_text())
    found = [(node.lineno, _called(node)) for node in ast.walk(tree)
             if isinstance(node, ast.Call) and _called(node) in TERMINAL]
    found += [(node.lineno, "raise " + _called(node.exc)) for node in ast.walk(tree)
              if isinstance(node, ast.Raise) and node.exc is not None and _called(node.exc) in TERMINAL]
    found += [(line, name) for line, name in _imports(tree)
              if name.split(".")[0] in ("typer", "rich") or "cli" in name.lstrip(".").split(".")[:2]]
    assert not found, f"{_rel(path)}: raise a CuratorError or return a result; the CLI shows it: {found}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "library").rglob("*.py")), ids=_rel)
def test_the_library_layer_imports_nothing_above_it(path):
    allowed = ("curator.library", "curator.errors", "curator.defaults")
    depth = len(path.relative_to(PACKAGE / "library").parts)  # '.' within, one dot more per sub-folder
    above = []
    for line, name in _imports(ast.parse(path.read_text())):
        dots = len(name) - len(name.lstrip("."))
        absolute = name if not dots else None
        if dots > depth:  # relative, climbing out of curator/library
            absolute = "curator." + name.lstrip(".")
        if absolute and (absolute.split(".")[0] in ("torch", "timm", "fiftyone", "numpy")
                         or (absolute.startswith("curator") and not absolute.startswith(allowed))):
            above.append((line, name))
    assert not above, f"{_rel(path)} imports above the library layer: {above}"


def test_every_package_in_the_tree_is_installed():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {name: ROOT / path for name, path in setuptools["package-dir"].items()}
    found = set()
    for name, folder in folders.items():
        nested = [folders[other] for other in folders if other.startswith(name + ".")]
        for init in folder.rglob("__init__.py"):
            if not any(init.is_relative_to(inner) for inner in nested):
                found.add(".".join((name, *init.parent.relative_to(folder).parts)))
    listed = set(setuptools["packages"])
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"
    assert listed <= found, f"pyproject.toml lists packages with no folder: {sorted(listed - found)}"
