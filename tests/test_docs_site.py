"""The documentation site builds with warnings as errors, and documents every public name."""

from __future__ import annotations

import importlib
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

import sourcetruth

DOCS = Path(__file__).resolve().parent.parent / "docs"

pytest.importorskip("sphinx", reason="the docs extra is not installed")


def _inventory(site: Path) -> set[str]:
    """The names of every object the built site describes (Sphinx's objects.inv)."""
    raw = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):  # four lines of header, then the zlib-compressed entries
        header_end = raw.index(b"\n", header_end) + 1
    entries = zlib.decompress(raw[header_end:]).decode()
    return {line.split(" ", 1)[0] for line in entries.splitlines() if line}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module by ``sphinx-build -W`` (a warning fails it)."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", DOCS, out],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


def _conf() -> Any:
    """The site's settings module, docs/conf.py, which knows the public modules."""
    sys.path.insert(0, str(DOCS))
    try:
        return importlib.import_module("conf")
    finally:
        sys.path.remove(str(DOCS))


def test_site_builds_with_every_page(site: Path) -> None:
    """Every Markdown page of docs/ becomes a page of the site (none left out of its contents)."""
    pages = {p.relative_to(DOCS).with_suffix("") for p in DOCS.rglob("*.md")}
    built = {p.relative_to(site).with_suffix("") for p in site.rglob("*.html")}
    assert pages <= built


def test_every_public_name_is_in_the_api_reference(site: Path) -> None:
    """Each name of each public module's ``__all__`` is described in the API reference."""
    documented = _inventory(site)
    missing = []
    for module_name in _conf().public_modules():
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            if module_name == "sourcetruth":
                continue  # the package's names are checked below, where they are defined
            if f"{module_name}.{name}" in documented:
                continue
            # A name a package loads lazily from a public module is described there.
            home = getattr(getattr(module, name), "__module__", None)
            if f"{home}.{name}" not in documented:
                missing.append(f"{module_name}.{name}")
    assert missing == []


def test_every_name_of_the_package_links_to_its_description(site: Path) -> None:
    """The package page links each name of ``sourcetruth.__all__`` to a described object."""
    documented = _inventory(site)
    page = (site / "reference" / "sourcetruth.html").read_text(encoding="utf-8")
    for name in sourcetruth.__all__:
        assert f">{name}<" in page.replace('<span class="pre">', "").replace("</span>", ""), name
    conf = _conf()
    homes = {name: conf._home_of(name) for name in sourcetruth.__all__}
    assert [n for n, home in homes.items() if home not in documented] == []
