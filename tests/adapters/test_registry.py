"""Finding adapters: built-ins, explicit registration, and installed entry-point plugins.

The plugin tests build a real installed distribution in a temporary folder (a
``fakeplugin-1.0.dist-info`` with ``METADATA`` and ``entry_points.txt``, beside
the plugin modules), put that folder on ``sys.path`` and let
``importlib.metadata`` find it as it would any installed package.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sourcetruth.adapters import available, get, register, registry, unregister
from sourcetruth.adapters.registry import AdapterKind
from sourcetruth.adapters.sources.tabular import CsvImportAdapter

PLUGIN_MODULES = ("good_plugin", "broken_plugin", "missing_dep_plugin")

ENTRY_POINTS = """\
[sourcetruth.sources]
good = good_plugin:GoodAdapter
broken = broken_plugin:BrokenAdapter
missing-dep = missing_dep_plugin:Adapter
no-such-class = good_plugin:NoSuchAdapter
csv = good_plugin:PluginCsvAdapter

[sourcetruth.address_books]
fake-book = good_plugin:GoodBook
"""

GOOD_PLUGIN = '''\
"""A plugin that loads."""


class GoodAdapter:
    pass


class PluginCsvAdapter:
    pass


class GoodBook:
    pass
'''

BROKEN_PLUGIN = '''\
"""A plugin with a bug of its own: it fails as it is imported."""

raise RuntimeError("broken_plugin cannot start")
'''

MISSING_DEP_PLUGIN = '''\
"""A plugin whose own dependency is not installed."""

import sourcetruth_no_such_dependency  # noqa: F401
'''


def _install_fake_plugin(folder: Path) -> None:
    """Lay out a fake installed distribution and its modules in *folder*."""
    dist = folder / "fakeplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    (folder / "good_plugin.py").write_text(GOOD_PLUGIN)
    (folder / "broken_plugin.py").write_text(BROKEN_PLUGIN)
    (folder / "missing_dep_plugin.py").write_text(MISSING_DEP_PLUGIN)


def _forget_plugin_modules() -> None:
    for name in PLUGIN_MODULES:
        sys.modules.pop(name, None)


@pytest.fixture
def clean_registrations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit registrations start empty and are thrown away after the test."""
    monkeypatch.setattr(registry, "_registered", {kind: {} for kind in registry.GROUPS})


@pytest.fixture
def fake_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_registrations: None
) -> Iterator[Path]:
    """The fake distribution installed on ``sys.path``, with the plugin cache reset.

    The cache and ``sys.path`` are restored afterwards, and the plugin modules
    are dropped from ``sys.modules`` before and after.
    """
    _install_fake_plugin(tmp_path)
    _forget_plugin_modules()
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_plugins", None)
    yield tmp_path
    _forget_plugin_modules()


def _run_python(code: str, *, pythonpath: Path | None = None) -> dict[str, list[str]]:
    """Run *code* in a fresh interpreter; it prints a JSON object of name lists."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(pythonpath), env.get("PYTHONPATH", "")) if p
        )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, list[str]] = json.loads(done.stdout)
    return result


class TestBuiltIns:
    def test_sources_list_the_built_in_adapters(self, clean_registrations: None) -> None:
        """`available("source")` names every built-in source adapter."""
        assert {"oneroster", "sds", "csv"} <= set(available("source"))

    def test_address_books_list_vcard(self, clean_registrations: None) -> None:
        """`available("address-book")` names the built-in vCard adapter, and no source adapter."""
        names = available("address-book")
        assert "vcard" in names
        assert not {"oneroster", "sds", "csv"} & set(names)

    def test_available_is_sorted(self, clean_registrations: None) -> None:
        """The names come back sorted, so listings are stable."""
        names = available("source")
        assert list(names) == sorted(names)

    def test_get_csv_returns_the_import_adapter_class(self, clean_registrations: None) -> None:
        """`get("source", "csv")` is the CsvImportAdapter class itself, not an instance."""
        assert get("source", "csv") is CsvImportAdapter

    @pytest.mark.parametrize(
        ("kind", "name", "module", "cls"),
        [
            ("source", "oneroster", "sourcetruth.adapters.sources.oneroster", "OneRosterAdapter"),
            ("source", "sds", "sourcetruth.adapters.sources.sds", "SdsAdapter"),
            ("source", "csv", "sourcetruth.adapters.sources.tabular", "CsvImportAdapter"),
            ("address-book", "vcard", "sourcetruth.adapters.sources.vcard", "VCardAdapter"),
        ],
    )
    def test_every_built_in_resolves_to_its_class(
        self, kind: AdapterKind, name: str, module: str, cls: str, clean_registrations: None
    ) -> None:
        """Each built-in name that `available` lists can be looked up: it names a real class."""
        assert name in available(kind)
        found = get(kind, name)
        assert isinstance(found, type)
        assert (found.__module__, found.__name__) == (module, cls)

    def test_unknown_name_is_a_lookup_error_listing_what_is_available(
        self, clean_registrations: None
    ) -> None:
        """An unknown adapter name raises LookupError whose message lists the available names."""
        with pytest.raises(LookupError) as caught:
            get("source", "arbor")
        message = str(caught.value)
        assert "arbor" in message
        for name in ("csv", "oneroster", "sds"):
            assert name in message

    def test_a_name_of_the_other_kind_is_not_found(self, clean_registrations: None) -> None:
        """Kinds are separate: the vCard address-book adapter is no source adapter."""
        with pytest.raises(LookupError):
            get("source", "vcard")

    @pytest.mark.parametrize(
        "call",
        [
            lambda: available("printer"),  # type: ignore[arg-type]
            lambda: get("printer", "csv"),  # type: ignore[arg-type]
            lambda: register("printer", "csv", object),  # type: ignore[arg-type]
            lambda: unregister("printer", "csv"),  # type: ignore[arg-type]
        ],
        ids=["available", "get", "register", "unregister"],
    )
    def test_unknown_kind_is_a_value_error(
        self, call: Callable[[], object], clean_registrations: None
    ) -> None:
        """Every function refuses an adapter kind that is not in GROUPS with ValueError."""
        with pytest.raises(ValueError, match="printer"):
            call()


class TestRegister:
    def test_register_goes_ahead_of_a_built_in(self, clean_registrations: None) -> None:
        """A registered adapter of a built-in's name is the one `get` returns."""

        class MyCsv:
            pass

        register("source", "csv", MyCsv)
        assert get("source", "csv") is MyCsv
        assert available("source").count("csv") == 1

    def test_unregister_restores_the_built_in(self, clean_registrations: None) -> None:
        """After `unregister`, the built-in adapter of that name shows again."""

        class MyCsv:
            pass

        register("source", "csv", MyCsv)
        unregister("source", "csv")
        assert get("source", "csv") is CsvImportAdapter

    def test_registered_new_name_is_available_until_unregistered(
        self, clean_registrations: None
    ) -> None:
        """A new name is listed and found while registered, and gone after `unregister`."""

        class Arbor:
            pass

        register("source", "arbor", Arbor)
        assert "arbor" in available("source")
        assert get("source", "arbor") is Arbor
        assert "arbor" not in available("address-book")
        unregister("source", "arbor")
        assert "arbor" not in available("source")
        with pytest.raises(LookupError):
            get("source", "arbor")

    def test_unregister_of_an_unknown_name_is_harmless(self, clean_registrations: None) -> None:
        """Unregistering a name never registered does nothing, built-ins included."""
        unregister("source", "csv")
        unregister("source", "never-registered")
        assert get("source", "csv") is CsvImportAdapter


class TestEntryPointPlugins:
    def test_good_plugin_is_available_and_returned(self, fake_plugin: Path) -> None:
        """A plugin declared under `sourcetruth.sources` is listed and `get` returns its class."""
        assert "good" in available("source")
        found = get("source", "good")
        assert found is sys.modules["good_plugin"].GoodAdapter
        assert Path(sys.modules["good_plugin"].__file__ or "").parent == fake_plugin

    def test_address_book_plugin_is_found_under_its_own_group(self, fake_plugin: Path) -> None:
        """A plugin under `sourcetruth.address_books` is an address-book adapter, not a source."""
        assert "fake-book" in available("address-book")
        assert "fake-book" not in available("source")
        assert get("address-book", "fake-book") is sys.modules["good_plugin"].GoodBook

    def test_broken_plugins_are_skipped_without_raising(self, fake_plugin: Path) -> None:
        """Plugins that fail to load are left out; the others and the built-ins still work."""
        names = available("source")
        assert "broken" not in names
        assert "missing-dep" not in names
        assert "no-such-class" not in names
        assert {"good", "csv", "oneroster", "sds"} <= set(names)
        with pytest.raises(LookupError):
            get("source", "broken")

    def test_each_broken_plugin_is_logged_as_a_warning_naming_it(
        self, fake_plugin: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Each plugin that fails to load is logged once at WARNING, naming it, with the cause."""
        with caplog.at_level(logging.WARNING, logger=registry.__name__):
            available("source")
        warnings = [r for r in caplog.records if r.name == registry.__name__]
        assert all(r.levelno == logging.WARNING for r in warnings)
        by_name = {
            name: [r for r in warnings if repr(name) in r.getMessage()]
            for name in ("broken", "missing-dep", "no-such-class")
        }
        assert {name: len(found) for name, found in by_name.items()} == {
            "broken": 1,
            "missing-dep": 1,
            "no-such-class": 1,
        }
        assert len(warnings) == 3
        broken = by_name["broken"][0]
        assert broken.exc_info is not None
        assert isinstance(broken.exc_info[1], RuntimeError)
        missing = by_name["missing-dep"][0]
        assert missing.exc_info is not None
        assert isinstance(missing.exc_info[1], ImportError)
        assert not any("'good'" in r.getMessage() for r in warnings)

    def test_plugins_are_loaded_once(
        self, fake_plugin: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Later lookups use the loaded plugins: a broken one is not retried or logged again."""
        available("source")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=registry.__name__):
            available("source")
            get("source", "good")
            available("address-book")
        assert [r for r in caplog.records if r.name == registry.__name__] == []

    def test_plugin_goes_ahead_of_a_built_in_of_the_same_name(
        self, fake_plugin: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A plugin called "csv" is returned instead of the built-in CSV adapter, and says so."""
        with caplog.at_level(logging.INFO, logger="sourcetruth.adapters.registry"):
            assert get("source", "csv") is sys.modules["good_plugin"].PluginCsvAdapter
        replaced = [r for r in caplog.records if "replaces the built-in" in r.getMessage()]
        assert len(replaced) == 1
        assert "'csv'" in replaced[0].getMessage()

    def test_register_goes_ahead_of_a_plugin(self, fake_plugin: Path) -> None:
        """A registered adapter beats a plugin of that name; unregister brings the plugin back."""

        class Mine:
            pass

        register("source", "good", Mine)
        assert get("source", "good") is Mine
        unregister("source", "good")
        assert get("source", "good") is sys.modules["good_plugin"].GoodAdapter

    def test_plugins_are_not_imported_before_the_first_lookup(self, fake_plugin: Path) -> None:
        """With the cache reset, no plugin module is imported until an adapter is looked up."""
        # Registering and unregistering need no plugin either.
        register("source", "arbor", object)
        unregister("source", "arbor")
        assert not set(PLUGIN_MODULES) & set(sys.modules)
        available("source")
        assert "good_plugin" in sys.modules

    def test_importing_the_package_does_not_load_plugins(self, fake_plugin: Path) -> None:
        """In a fresh interpreter, importing sourcetruth.adapters imports no plugin module;
        the first lookup does."""
        code = (
            "import json, sys\n"
            "import sourcetruth, sourcetruth.adapters\n"
            f"names = {list(PLUGIN_MODULES)!r}\n"
            "before = sorted(n for n in names if n in sys.modules)\n"
            "listed = sourcetruth.adapters.available('source')\n"
            "after = sorted(n for n in names if n in sys.modules)\n"
            "print(json.dumps({'before': before, 'after': after, 'listed': list(listed)}))\n"
        )
        seen = _run_python(code, pythonpath=fake_plugin)
        assert seen["before"] == []
        assert seen["after"] == ["good_plugin"]
        assert "good" in seen["listed"]


class TestImportIsLight:
    def test_importing_the_package_pulls_in_no_test_tool_or_built_in_adapter(self) -> None:
        """`import sourcetruth, sourcetruth.adapters` imports neither hypothesis nor pytest,
        nor any built-in adapter module: each is imported when first used."""
        code = (
            "import json, sys\n"
            "import sourcetruth\n"
            "import sourcetruth.adapters\n"
            "print(json.dumps({'modules': sorted(sys.modules)}))\n"
        )
        modules = set(_run_python(code)["modules"])
        assert "sourcetruth.adapters.registry" in modules  # the probe does see the package
        roots = {name.split(".")[0] for name in modules}
        assert not roots & {"hypothesis", "pytest", "_pytest"}
        adapters = {
            "sourcetruth.adapters.sources.oneroster",
            "sourcetruth.adapters.sources.sds",
            "sourcetruth.adapters.sources.tabular",
            "sourcetruth.adapters.sources.vcard",
            "sourcetruth.adapters.sources.export",
        }
        assert not adapters & modules

    def test_get_imports_only_the_adapter_asked_for(self) -> None:
        """Looking up the CSV adapter imports its module and no other built-in adapter."""
        code = (
            "import json, sys\n"
            "from sourcetruth.adapters import get\n"
            "get('source', 'csv')\n"
            "print(json.dumps({'modules': sorted(sys.modules)}))\n"
        )
        modules = set(_run_python(code)["modules"])
        assert "sourcetruth.adapters.sources.tabular" in modules
        others = {
            "sourcetruth.adapters.sources.oneroster",
            "sourcetruth.adapters.sources.sds",
            "sourcetruth.adapters.sources.vcard",
            "sourcetruth.adapters.sources.export",
        }
        assert not others & modules
