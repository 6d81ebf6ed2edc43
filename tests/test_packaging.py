"""The package as users install it: version, public names, typing marker, light import."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from importlib import metadata, resources
from pathlib import Path

import pytest

import sourcetruth

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _public_modules() -> list[str]:
    """Every module of the package whose dotted name has no part starting with '_'."""
    names = ["sourcetruth"]
    for info in pkgutil.walk_packages(sourcetruth.__path__, prefix="sourcetruth."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _isort_key(name: str) -> tuple[int, str]:
    """Constants first, then classes, then everything else (the order ruff's RUF022 keeps)."""
    if name.isupper():
        return 0, name
    if name[:1].isupper():
        return 1, name
    return 2, name


class TestVersion:
    def test_the_version_is_written_once(self) -> None:
        """pyproject.toml takes its version from the package, which installs under it."""
        with PYPROJECT.open("rb") as f:
            project = tomllib.load(f)
        assert "version" not in project["project"]
        assert project["project"]["dynamic"] == ["version"]
        assert project["tool"]["hatch"]["version"]["path"] == "src/sourcetruth/__init__.py"
        assert metadata.version("sourcetruth") == sourcetruth.__version__


class TestPublicNames:
    def test_all_is_sorted(self) -> None:
        """`__all__` is sorted: constants, then classes, then functions, each alphabetically."""
        names = list(sourcetruth.__all__)
        assert names == sorted(names, key=_isort_key)

    def test_all_has_no_duplicates(self) -> None:
        """Each public name is listed once."""
        assert len(set(sourcetruth.__all__)) == len(sourcetruth.__all__)

    def test_every_name_in_all_exists(self) -> None:
        """Every name in `sourcetruth.__all__` is an attribute of the package."""
        missing = [name for name in sourcetruth.__all__ if not hasattr(sourcetruth, name)]
        assert missing == []

    def test_public_modules_are_found(self) -> None:
        """The walk below sees the core modules (so it cannot pass by finding nothing)."""
        found = set(_public_modules())
        core = {"merge", "model", "normalise", "policy", "schedule", "serialise", "exceptions"}
        assert {f"sourcetruth.{name}" for name in core} <= found

    @pytest.mark.parametrize("module_name", _public_modules())
    def test_every_public_modules_all_names_exist(self, module_name: str) -> None:
        """Each public module's `__all__` names only attributes the module has."""
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None)
        assert names is not None, f"{module_name} has no __all__"
        assert [name for name in names if not hasattr(module, name)] == []


class TestImportCost:
    def test_import_does_not_pull_in_test_tools(self) -> None:
        """`import sourcetruth` in a fresh interpreter imports no test tool or optional extra."""
        code = "import json, sys\nimport sourcetruth\nprint(json.dumps(sorted(sys.modules)))\n"
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        modules = json.loads(done.stdout)
        assert "sourcetruth" in modules
        optional = {"hypothesis", "pytest", "_pytest", "dask", "distributed", "polars", "aiosmtpd"}
        optional |= {"sphinx", "myst_parser", "twine", "build"}
        heavy = sorted(m for m in modules if m.split(".")[0] in optional)
        assert heavy == []


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and sdist, built once for this module."""
    pytest.importorskip("build", reason="the dev extra is not installed")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out)],
        cwd=PYPROJECT.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out


class TestDistributions:
    """The wheel and sdist as ``python -m build`` makes them, checked by ``twine check``."""

    def test_twine_check_passes(self, built: Path) -> None:
        """Both distributions' metadata and long description pass ``twine check --strict``."""
        files = sorted(str(p) for p in built.iterdir())
        assert len(files) == 2
        done = subprocess.run(
            [sys.executable, "-m", "twine", "check", "--strict", *files],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def test_wheel_carries_the_licence_and_typing_marker(self, built: Path) -> None:
        """The wheel holds LICENSE, py.typed and complete metadata (URLs, classifiers, version)."""
        (wheel,) = built.glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
            meta = archive.read(meta_name).decode()
        assert any(n.endswith("licenses/LICENSE") for n in names)
        assert "sourcetruth/py.typed" in names
        assert f"Version: {sourcetruth.__version__}" in meta
        assert "Classifier: Typing :: Typed" in meta
        assert "License-Expression: MIT" in meta
        assert meta.count("Project-URL: ") >= 3

    def test_sdist_carries_the_tests_and_docs(self, built: Path) -> None:
        """The sdist holds what the suite needs: tests, docs, licence, the PostgreSQL script."""
        (sdist,) = built.glob("*.tar.gz")
        with tarfile.open(sdist) as archive:
            names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
        assert {"LICENSE", "CHANGELOG.md", "pyproject.toml"} <= names
        assert any(n.startswith("tests/") for n in names)
        assert any(n.startswith("docs/") for n in names)
        assert ".ci/postgres" in names


class TestTypingMarker:
    def test_py_typed_ships_with_the_package(self) -> None:
        """PEP 561: the `py.typed` marker sits next to the package's modules."""
        assert resources.files("sourcetruth").joinpath("py.typed").is_file()


#: Names that moved out of a core module, one of each new home: old module, name, home.
MOVED = [
    ("sourcetruth.merge", "Report", "sourcetruth.report"),
    ("sourcetruth.merge", "contact_at", "sourcetruth.effective"),
    ("sourcetruth.merge", "recipients", "sourcetruth.audience"),
    ("sourcetruth.merge", "possible_duplicates", "sourcetruth.duplicates"),
    ("sourcetruth.merge", "EXPIRY", "sourcetruth.model"),
    ("sourcetruth.model", "SetOverride", "sourcetruth.changes"),
    ("sourcetruth.model", "ConfirmSync", "sourcetruth.changes"),
]
OLD_HOMES = sorted({old for old, _, _ in MOVED})
ROOT = PYPROJECT.parent


class TestNamesThatMoved:
    @pytest.mark.parametrize(("old", "name", "home"), MOVED)
    def test_the_old_import_still_works_and_warns(self, old: str, name: str, home: str) -> None:
        """`from OLD import X` gives X from its new home, and a DeprecationWarning naming it."""
        namespace: dict[str, object] = {}
        with pytest.warns(DeprecationWarning, match=home):
            exec(f"from {old} import {name}", namespace)
        assert namespace[name] is getattr(importlib.import_module(home), name)

    @pytest.mark.parametrize("old", OLD_HOMES)
    def test_a_name_the_module_never_had_is_still_an_attribute_error(self, old: str) -> None:
        """The alias covers the names that moved, and nothing else."""
        module = importlib.import_module(old)
        with pytest.raises(AttributeError, match="no_such_name"):
            _ = module.no_such_name

    @pytest.mark.parametrize("old", OLD_HOMES)
    def test_nothing_in_the_project_imports_a_moved_name(self, old: str) -> None:
        """src, tests, benchmarks and the docs' code import from a module only its own names."""
        own = set(importlib.import_module(old).__all__)
        found = [
            f"{path.relative_to(ROOT)}: {alias.name}"
            for path, code in _project_code()
            for node in ast.walk(ast.parse(code))
            if isinstance(node, ast.ImportFrom) and node.module == old
            for alias in node.names
            if alias.name not in own
        ]
        assert found == []


def _project_code() -> list[tuple[Path, str]]:
    """Every Python file of the project, and every Python code block of its Markdown."""
    found = []
    for folder in ("src", "tests", "docs", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            found.append((path, path.read_text(encoding="utf-8")))
        for path in sorted((ROOT / folder).rglob("*.md")):
            blocks = re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
            found += [(path, block) for block in blocks]
    return found


class TestChangelog:
    """CHANGELOG.md keeps the Keep a Changelog form, which tools and readers rely on."""

    KINDS = frozenset({"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"})
    RELEASE = re.compile(r"^## \[(Unreleased|\d+\.\d+\.\d+)\](?: - \d{4}-\d{2}-\d{2})?$")

    def test_headings_are_releases_and_kinds_of_change(self) -> None:
        """Each `##` is a release (`[Unreleased]` or `[X.Y.Z] - date`), each `###` a kind, once."""
        text = (PYPROJECT.parent / "CHANGELOG.md").read_text(encoding="utf-8")
        lines = text.splitlines()
        assert lines[0] == "# Changelog"
        releases: list[str] = []
        kinds: list[str] = []
        for line in lines:
            if line.startswith("## "):
                found = self.RELEASE.match(line)
                assert found, line
                releases.append(found.group(1))
                kinds = []
            elif line.startswith("### "):
                kind = line[4:]
                assert kind in self.KINDS, line
                assert kind not in kinds, f"{kind} twice in one release"
                kinds.append(kind)
        assert releases[:1] == ["Unreleased"]
        for release in releases:
            assert re.search(rf"^\[{re.escape(release)}\]: https://", text, re.M), release
