"""The layout's promises, checked on the source: imports flow one way, the tools stay beside the product,
and nothing outside a subpackage reaches into its private modules."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "recommender", "training", "serving", "tools")
FORBIDDEN = {
    "engine": {"recommender", "training", "serving", "tools"},
    "recommender": {"training", "serving", "tools"},
    "training": {"serving", "tools"},
    "serving": {"tools"},  # the service never imports the tools; its command line (serving/cli) may
}
SUBPACKAGES = ("engine.rules", "engine.rules.conditions", "engine.rules.loader", "engine.triggers", "serving.console",
               "serving.routes", "serving.cli")
"""Packages whose modules are private: code outside them imports the names their ``__init__`` lists."""


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_modules() -> list[Path]:
    return [p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))]


def test_imports_flow_one_way_and_the_service_never_imports_the_tools() -> None:
    wrong = []
    for path in product_modules():
        name = module_name(path)
        package = name.split(".")[0]
        forbidden = set() if name.startswith("serving.cli") else FORBIDDEN.get(package, set())
        for line, imported in imports(path):
            if imported.split(".")[0] in forbidden:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {name} imports {imported}")
    assert not wrong, "\n".join(wrong)


def test_nothing_outside_a_subpackage_imports_its_private_modules() -> None:
    wrong = []
    for path in product_modules():
        name = module_name(path)
        for line, imported in imports(path):
            for sub in SUBPACKAGES:
                inside = name == sub or name.startswith(sub + ".")
                if imported.startswith(sub + ".") and not inside:
                    wrong.append(f"{path.relative_to(REPO)}:{line}: {name} imports {imported} (use {sub})")
    assert not wrong, "\n".join(wrong)
