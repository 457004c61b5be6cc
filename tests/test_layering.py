"""The one-way layering: core <- io <- widgets <- app."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "refinewidgets"
UI_MODULES = ("ipywidgets", "IPython", "traitlets", "ipykernel", "voila")


def test_importing_the_package_and_building_loads_no_ui():
    code = (
        "import sys, refinewidgets as rw\n"
        "cat = rw.open_catalog()\n"
        "rw.build(rw.Dataset({'ERP900101': ['ALL']}, quantile_normalize=False), cat)\n"
        "rw.build(rw.Dataset({'GSE71102': ['ALL']}), cat)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {UI_MODULES!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _imports(path: Path, *, module_level: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    nodes = tree.body if module_level else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(("." * node.level) + (node.module or ""))
    return found


def test_core_imports_neither_io_nor_widgets_nor_ui():
    upward = (
        "..io",
        "..widgets",
        "..app",
        "refinewidgets.io",
        "refinewidgets.widgets",
        "refinewidgets.app",
    )
    for path in (PACKAGE / "core").glob("*.py"):
        for name in _imports(path, module_level=True):
            assert not name.startswith(upward), (path, name)
        for name in _imports(path):
            assert name.split(".")[0] not in UI_MODULES, (path, name)
            assert not name.startswith(("..widgets", "..app", "refinewidgets.widgets")), (
                path,
                name,
            )
            if name.startswith(("..io", "refinewidgets.io")):
                # The allowed reaches upward, each imported only when called, so the core
                # stays importable without io: Result.write_zip and Result.write_h5ad import
                # their writers (as AnnData.write_h5ad does), and a bulk build given genes= by
                # symbol reads the symbol table (offline); the browser's indexes read the ontology tables.
                assert (path.name, name) in {
                    ("result.py", "..io.refinebio.zip"),
                    ("result.py", "..io.h5ad_out"),
                    ("build.py", "..io.gene_symbols"),
                    ("browse.py", "..io.ontology_tables"),
                }, (path, name)


def _absolute(path: Path, name: str) -> str:
    """``name`` as imported in ``path``, relative imports resolved (``...errors`` in
    ``io/bgee/h5ad.py`` is ``refinewidgets.errors``)."""
    if not name.startswith("."):
        return name
    dots = len(name) - len(name.lstrip("."))
    package = ["refinewidgets", *path.relative_to(PACKAGE).parent.parts]
    base = package[: len(package) - (dots - 1)]
    return ".".join(base + ([name[dots:]] if name[dots:] else []))


def test_io_does_not_import_widgets():
    for path in (PACKAGE / "io").rglob("*.py"):
        for name in _imports(path):
            absolute = _absolute(path, name)
            assert not absolute.startswith(
                ("refinewidgets.widgets", "refinewidgets.app", "refinewidgets.cli")
            ), (path, name)
            assert name.split(".")[0] not in UI_MODULES, (path, name)


def test_containers_know_no_file_format():
    # zip, folder and tar stores, safe names, read caps and atomic output serve every format:
    # they import none of the format packages (refine.bio, Bgee) nor the remote clients
    formats = ("refinewidgets.io.refinebio", "refinewidgets.io.bgee", "refinewidgets.io.remote")
    paths = list((PACKAGE / "io" / "containers").glob("*.py"))
    assert len(paths) >= 5, paths
    for path in paths:
        for name in _imports(path):
            assert not _absolute(path, name).startswith(formats), (path, name)


def test_no_runtime_module_imports_the_testing_package():
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "testing":
            continue
        for name in _imports(path):
            assert "testing" not in name.split("."), (path, name)
    code = (
        "import sys, refinewidgets as rw\n"
        "import refinewidgets.cli, refinewidgets.app, refinewidgets.widgets\n"
        "rw.build(rw.Dataset({'GSE71102': ['ALL']}), rw.open_catalog())\n"
        "print(sorted(m for m in sys.modules if m.startswith('refinewidgets.testing')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """A function's lines, its docstring left out (a numpydoc docstring is documentation)."""
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        if isinstance(first.value.value, str):
            lines -= first.end_lineno - first.lineno + 1
    return lines


#: The parts of the package under the size rules: a folder, or modules of the package's root.
SIZE_RULED = {
    "io": ["io"],
    "core": ["core"],
    "ui": ["widgets", "app.py", "app_server.py", "app_kernels.py", "cli.py"],
}


@pytest.mark.parametrize("layer", SIZE_RULED)
def test_modules_and_functions_stay_small(layer):
    # issue 23: no module over 600 lines, no function over 60 lines of code or complexity 15
    paths = [PACKAGE / part for part in SIZE_RULED[layer]]
    modules = [m for p in paths for m in (sorted(p.rglob("*.py")) if p.is_dir() else [p])]
    too_long = []
    for path in modules:
        name = path.relative_to(PACKAGE).as_posix()
        text = path.read_text()
        if text.count("\n") > 600:
            too_long.append((name, text.count("\n")))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if _code_lines(node) > 60:
                    too_long.append((f"{name}:{node.name}", _code_lines(node)))
    assert too_long == []
    complexity = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "C901"]
        + ["--config", "lint.mccabe.max-complexity=15", "--output-format", "concise"]
        + [str(p) for p in paths],
        capture_output=True,
        text=True,
    )
    assert complexity.returncode == 0, complexity.stdout
