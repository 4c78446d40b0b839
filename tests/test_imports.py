"""What the modules import: no cycle anywhere in the app's own code (chat/, ui/, server/), and nothing heavy
before the first paint."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = ROOT / "chat" / "providers"
PACKAGES = ("chat", "ui", "server")


def module_imports() -> dict[str, set[str]]:
    """Each module of the app's packages with the modules of those packages it imports when it runs, anywhere
    in its code (inside functions too: a lazy import still closes a cycle; an ``if TYPE_CHECKING:`` import
    never runs, so it does not count). ``from chat.store import x`` is an import of the module
    ``chat.store.x`` when there is one, else of the package ``chat.store`` (its __init__); importing a module
    of a package from outside it runs the package's __init__ first, so that counts as an import of it too."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def type_checking_only(tree: ast.AST) -> set[ast.AST]:
        skipped: set[ast.AST] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped.update(n for child in node.body for n in ast.walk(child))
        return skipped

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, set())
        tree = ast.parse(path.read_text())
        skipped = type_checking_only(tree)
        for node in ast.walk(tree):
            if node in skipped:
                continue
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    edges.add(full if full in modules else known(node.module))
            elif isinstance(node, ast.Import):
                edges.update(known(alias.name) for alias in node.names)
        edges.discard(None)
        for target in list(edges):  # the packages a module from outside them passes through
            parts = target.split(".")
            edges.update(package for package in (".".join(parts[:i]) for i in range(1, len(parts)))
                         if package in modules and not (name + ".").startswith(package + "."))
        edges.discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, done = [], set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            found.append(path[path.index(node):] + [node])
            return
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, path + [node])
        done.add(node)

    for start in sorted(graph):
        visit(start, [])
    return found


def test_the_app_s_modules_import_each_other_without_a_cycle():
    graph = module_imports()
    # the walk saw the packages, the packages' own modules and the lazy imports
    assert {"chat.store", "chat.store.sqlite", "chat.providers.base", "chat.turns.turn", "ui.stream",
            "server.startup"} <= graph.keys()
    assert "chat.store.sqlite" in graph["chat.store"] and "chat.turns.turn" in graph["chat.turns.actions"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


FIRST_PAINT = ("chat.history", "chat.live", "chat.outbox", "chat.turns", "chat.tool_loop", "chat.store",
               "ui.render", "ui.stream", "ui.resources", "ui.page", "ui.widgets", "server.startup")
HEAVY = ("pandas", "numpy", "openai", "anthropic", "genai_prices")


def test_the_modules_the_chat_page_imports_leave_the_heavy_libraries_for_later():
    import json
    import subprocess
    import sys

    code = (f"import json, sys; import {', '.join(FIRST_PAINT)}; "
            f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROVIDERS.parent.parent, capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == dict.fromkeys(HEAVY, False)


def test_sqlite_utils_left_without_pandas_still_stores_and_reads_rows(tmp_path):
    from chat.lean_sqlite_utils import sqlite_utils

    db = sqlite_utils.Database(tmp_path / "t.db")
    db["rows"].insert_all([{"id": 1, "text": "héllo", "n": 2.5}], pk="id")
    assert list(db["rows"].rows) == [{"id": 1, "text": "héllo", "n": 2.5}]


def test_a_providers_sdk_is_imported_when_that_provider_is_first_used():
    import json
    import subprocess
    import sys

    code = """
import json, os, sys
os.environ.update(OPENAI_API_KEY="k", ANTHROPIC_API_KEY="k")
from chat.config import load_settings
from chat.providers import build_providers
built = []
providers = build_providers(load_settings(os.environ, {}), then=lambda name, provider: built.append(name))
sdks = lambda: [m in sys.modules for m in ("openai", "anthropic")]
seen = {"listed": sorted(providers), "has": "anthropic" in providers, "before": sdks()}
first = providers["openai"]
seen.update(after=sdks(), same=providers["openai"] is first, built=built)
print(json.dumps(seen))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=PROVIDERS.parent.parent, capture_output=True, text=True,
                         check=True).stdout
    seen = json.loads(out)
    assert seen["listed"] == ["anthropic", "openai"] and seen["has"]
    assert seen["before"] == [False, False]
    assert seen["after"] == [True, False] and seen["same"] and seen["built"] == ["openai"]
