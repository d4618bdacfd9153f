"""Imports point one way: the producer may import the workers and shared code, the workers only shared code,
and shared code neither side. Every module is read as source (AST), so an import hidden inside a function,
a relative import or an ``importlib.import_module("...")`` counts as much as one at the top of a file."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "producer", "workers")
FORBIDDEN = {"shared": {"producer", "workers"}, "workers": {"producer"}, "producer": set()}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the tree, wherever it sits."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])
            elif node.module:
                yield node.lineno, node.module
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in {"import_module", "__import__"})
            )
        ):
            yield node.lineno, node.args[0].value


def modules(root: Path) -> list[Path]:
    return sorted(path for package in PACKAGES for path in (root / package).rglob("*.py"))


def violations(root: Path) -> list[str]:
    """Every import that points the wrong way, as 'file:line: importer imports imported'."""
    found = []
    for path in modules(root):
        module = _module_name(path, root)
        layer = module.split(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, imported in _imported(tree, module, path.name == "__init__.py"):
            if imported.split(".")[0] in FORBIDDEN[layer]:
                found.append(f"{path.relative_to(root)}:{line}: {module} imports {imported}")
    return found


def test_workers_never_import_the_producer_and_shared_imports_neither_side() -> None:
    scanned = modules(REPO)

    found = violations(REPO)

    assert len(scanned) > 100, "the scan must see the whole codebase"
    assert found == [], "imports against the direction shared <- workers <- producer:\n" + "\n".join(found)


def test_the_scan_finds_reversed_arrows_at_top_level_inside_functions_and_by_name(tmp_path: Path) -> None:
    files = {
        "shared/__init__.py": "",
        "shared/keys.py": "import workers.runner\n",
        "shared/sub/__init__.py": "",
        "shared/sub/deep.py": "def f():\n    from .. import keys\n    import producer.cli as cli\n",
        "workers/__init__.py": "",
        "workers/tools.py": "import shared.keys\n\ndef f():\n    from producer.planner import plan_book\n",
        "workers/dynamic.py": "import importlib\nimportlib.import_module('producer.submit')\n",
        "producer/__init__.py": "",
        "producer/cli.py": "import workers.worker\nfrom shared import keys\nfrom . import planner\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)

    found = violations(tmp_path)

    assert found == [
        "shared/keys.py:1: shared.keys imports workers.runner",
        "shared/sub/deep.py:3: shared.sub.deep imports producer.cli",
        "workers/dynamic.py:2: workers.dynamic imports producer.submit",
        "workers/tools.py:4: workers.tools imports producer.planner",
    ]
