"""The public API's conventions, checked on every name in ``rw.__all__`` and
``rw.widgets.__all__`` (as scanpy's package-structure test does): the data comes first, at most
one companion positional argument, options keyword-only, every public name documented, every
error and warning class exported."""

from __future__ import annotations

import inspect

import pytest

import refinewidgets as rw
from refinewidgets import errors

pytest.importorskip("ipywidgets")
import refinewidgets.widgets as rw_widgets

PUBLIC = [(rw, name) for name in rw.__all__ if name != "__version__"] + [
    (rw_widgets, name) for name in rw_widgets.__all__
]


@pytest.mark.parametrize("module,name", PUBLIC, ids=[f"{m.__name__}.{n}" for m, n in PUBLIC])
def test_public_names_follow_the_conventions(module, name):
    obj = getattr(module, name)
    assert inspect.getdoc(obj), f"{name} has no docstring"
    if isinstance(obj, type) and issubclass(obj, (BaseException, Warning)):
        return
    signature = inspect.signature(obj)
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    assert len(positional) <= 2, f"{name}: at most data and one companion are positional"
    with_default = [p.name for p in positional[1:] if p.default is not p.empty]
    assert not with_default, f"{name}: options {with_default} must be keyword-only"


def test_every_error_and_warning_class_is_exported():
    assert set(errors.__all__) <= set(rw.__all__)
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, (rw.RefineWidgetsError, rw.RefineWidgetsWarning)), name
        if issubclass(cls, rw.RefineWidgetsError) and cls is not rw.RefineWidgetsError:
            builtin = [b for b in cls.__mro__ if b.__module__ == "builtins" and b is not object]
            assert builtin[0] is not Exception, f"{name} also subclasses a specific builtin"


def test_importing_the_package_loads_no_numerical_library():
    """``import refinewidgets`` (and the command line's module) loads only the errors: pandas,
    numpy and anndata come with the first ``rw.<name>`` that needs them, so ``refinewidgets
    search`` prints what it is doing before they load."""
    import subprocess
    import sys

    code = (
        "import sys, refinewidgets, refinewidgets.cli as cli; "
        "print(sorted(m for m in ('pandas', 'numpy', 'anndata', 'polars') if m in sys.modules)); "
        "import refinewidgets as rw; rw.Dataset; "
        "print('pandas' in sys.modules, sorted(set(rw.__all__) - set(dir(rw))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[]", "True []"], out.stdout + out.stderr
