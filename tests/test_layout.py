"""The layering README's "How it fits together" promises, read from the imports themselves: a
model stage borrows only from what stages share, and nothing a worker loads imports the
offline tools."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = {"audio", "device"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.startswith("models.")}


def test_a_model_stage_imports_only_itself_and_what_stages_share():
    borrowed = {}
    for path in (ROOT / "models").glob("*/*.py"):
        stage = path.parent.name
        if stage == "tools":
            continue
        others = {name for name in _imports(path) if name.split(".")[1] not in {stage, *SHARED}}
        if others:
            borrowed[str(path.relative_to(ROOT))] = sorted(others)
    assert borrowed == {}


def test_nothing_a_worker_loads_imports_the_offline_tools():
    loaded = [*ROOT.glob("core/*.py"), *ROOT.glob("storage/*.py"), *ROOT.glob("workers/*.py"),
              *ROOT.glob("config/*.py"), *(p for p in ROOT.glob("models/**/*.py") if "tools" not in p.parts)]
    assert [str(p.relative_to(ROOT)) for p in loaded if any(n.startswith("models.tools") for n in _imports(p))] == []
