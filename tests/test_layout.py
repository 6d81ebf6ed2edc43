"""A path says what a module does: the core imports no edge, and edges import inward only.

The core is every module directly in ``sourcetruth`` (pure: see
``test_determinism``). ``adapters`` touch files, feeds, servers and stores;
``app`` runs the core against them; ``cli`` is the command. Imports run
inward: cli -> app -> adapters -> core, and ``testing`` may use all but cli.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import sourcetruth
from school import ROOT
from sourcetruth._moved import MOVED

PACKAGE = Path(sourcetruth.__file__).parent
LAYERS = ("adapters", "app", "cli", "testing")
#: For each layer, the layers it must never import (the core is the package's top level).
FORBIDDEN = {
    "core": set(LAYERS),
    "adapters": {"app", "cli", "testing"},
    "app": {"cli", "testing"},
    "testing": {"cli"},
    "cli": {"testing"},
}


def layer_of(path: Path) -> str:
    """The layer a source file belongs to: its first folder under the package, or core."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else "core"


def imported_layers(source: str) -> set[str]:
    """The layers of ``sourcetruth`` that *source* imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "sourcetruth" and len(parts) > 1 and parts[1] in LAYERS:
                found.add(parts[1])
    return found


#: Every module but the package's own ``__init__`` (it names the sending loop for
#: type checkers only, and a subprocess test below checks what it loads),
#: ``__main__`` (the command's entry) and ``_moved`` (old paths' aliases).
SOURCES = sorted(
    p
    for p in PACKAGE.rglob("*.py")
    if p.parent != PACKAGE or p.name not in {"__init__.py", "__main__.py", "_moved.py"}
)


class TestImportsRunInward:
    def test_every_layer_has_modules(self) -> None:
        """Each layer holds modules (so the check below cannot pass by finding none)."""
        assert {layer_of(p) for p in SOURCES} == {"core", *LAYERS}

    @pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
    def test_no_module_imports_an_outer_layer(self, path: Path) -> None:
        """The core imports no adapter, app, cli or testing; adapters no app; app no cli."""
        layer = layer_of(path)
        wrong = imported_layers(path.read_text(encoding="utf-8")) & FORBIDDEN[layer]
        assert not wrong, f"{layer} module imports {sorted(wrong)}"

    @pytest.mark.parametrize(
        ("snippet", "expected"),
        [
            ("import sourcetruth.adapters.registry", {"adapters"}),
            ("from sourcetruth.app import demo", {"app"}),
            ("from sourcetruth import cli", {"cli"}),
            ("def f():\n    from sourcetruth.testing import strategies", {"testing"}),
            ("from sourcetruth.model import Book", set()),
        ],
    )
    def test_the_checker_sees_each_form_of_import(self, snippet: str, expected: set[str]) -> None:
        """The import checker finds plain, from-, package-level and function-level imports."""
        assert imported_layers(snippet) == expected


class TestImportingThePackage:
    def test_import_sourcetruth_loads_the_core_only(self) -> None:
        """``import sourcetruth`` loads no adapter, app, cli or testing module."""
        code = "import json, sys\nimport sourcetruth\nprint(json.dumps(sorted(sys.modules)))\n"
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        loaded = [m for m in json.loads(done.stdout) if m.startswith("sourcetruth.")]
        outer = [m for m in loaded if m.split(".")[1] in LAYERS]
        assert outer == []
        assert "sourcetruth.merge" in loaded

    def test_the_sending_names_load_on_first_use(self) -> None:
        """``sourcetruth.send`` and the delivery logs still import from the root, lazily."""
        from sourcetruth import FileDeliveryLog, MemoryDeliveryLog, send
        from sourcetruth.app import sending

        assert (send, FileDeliveryLog, MemoryDeliveryLog) == (
            sending.send,
            sending.FileDeliveryLog,
            sending.MemoryDeliveryLog,
        )
        with pytest.raises(AttributeError):
            _ = sourcetruth.no_such_name  # type: ignore[attr-defined]
        assert {"send", "FileDeliveryLog", "MemoryDeliveryLog"} <= set(dir(sourcetruth))


class TestOldModulePaths:
    def test_the_old_transport_module_still_exports_its_names(self) -> None:
        """Every name of the old ``sourcetruth.adapters.transport``'s ``__all__`` still imports."""
        code = (
            "from sourcetruth.adapters.transport import "
            "DeliveryResult, DeliveryStatus, Envelope, OutboxTransport, Transport"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            exec(code, {})

    @pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
    def test_an_old_path_is_its_new_module_and_warns(self, old: str, new: str) -> None:
        """Each moved module imports under its old path as the same object, with a warning."""
        import importlib

        sys.modules.pop(old, None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(old)
        assert module is importlib.import_module(new)
        assert module.__spec__ is not None
        assert module.__spec__.name == new
        assert any(
            issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught
        )


TEST_FILES = sorted([*(ROOT / "tests").rglob("test_*.py"), *(ROOT / "docs").glob("test_*.py")])


def undocumented_tests(source: str) -> list[str]:
    """The test functions of *source* that have no docstring."""
    return [
        node.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test")
        and not ast.get_docstring(node)
    ]


class TestEveryTestSaysWhatItProves:
    def test_the_test_files_are_found(self) -> None:
        """The walk sees the test tree, adapters and command tests included."""
        names = {p.name for p in TEST_FILES}
        assert {"test_layout.py", "test_cli_send.py", "test_oneroster.py"} <= names

    @pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
    def test_every_test_has_a_docstring(self, path: Path) -> None:
        """Each test function has a docstring saying what it proves."""
        assert undocumented_tests(path.read_text(encoding="utf-8")) == []

    def test_the_checker_finds_a_test_without_one(self) -> None:
        """The check above can fail: a bare test is found, a documented one is not."""
        source = 'def test_a():\n    pass\n\ndef test_b():\n    """B holds."""\n'
        assert undocumented_tests(source) == ["test_a"]
