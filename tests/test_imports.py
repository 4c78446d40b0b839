"""What the modules import: no cycles among the modules of a package (providers, turns), and nothing heavy before
the first paint."""

from __future__ import annotations

import ast
from pathlib import Path

CHAT = Path(__file__).resolve().parent.parent / "chat"
PROVIDERS = CHAT / "providers"


def package_imports(package: str) -> dict[str, set[str]]:
    """Each module of chat/<package>/ with the modules of chat/<package>/ it imports, anywhere in its code
    (inside functions too: a lazy import still closes a cycle)."""
    folder, dotted = CHAT / package, f"chat.{package}"
    names = {p.stem for p in folder.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        edges = graph.setdefault(path.stem, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == dotted:
                edges.update(a.name if a.name in names else "__init__" for a in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(dotted + "."):
                edges.add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                edges.update(a.name.split(".")[2] for a in node.names if a.name.startswith(dotted + "."))
            elif isinstance(node, ast.ImportFrom) and node.module == "chat" and any(a.name == package
                                                                                     for a in node.names):
                edges.add("__init__")  # `from chat import <package>` inside the package
        edges.discard(path.stem)
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


def test_the_providers_modules_import_each_other_without_a_cycle():
    graph = package_imports("providers")
    assert {"base", "transport", "http_errors", "sdk_reply"} <= graph.keys()  # the walk saw the package
    assert cycles(graph) == []


def test_the_turns_modules_import_each_other_without_a_cycle():
    graph = package_imports("turns")
    assert {"__init__", "turn", "actions", "request"} <= graph.keys() and "turn" in graph["actions"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


FIRST_PAINT = ("chat.history", "chat.live", "chat.outbox", "chat.turns", "chat.tool_loop", "chat.store",
               "ui.render", "ui.stream", "ui.resources", "server.startup")
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
