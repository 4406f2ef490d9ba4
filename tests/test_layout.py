"""No module imports a test module or ``conftest``: what tests share lives in
``tests/helpers.py`` and the other shared modules, their fixtures in ``conftest.py``.

Importing from a test module runs its tests' module code in another module, registers
its fixtures twice and ties one test file's edits to another's; importing ``conftest``
does the same to every fixture.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def _is_test_module(name: str) -> bool:
    """``tests.test_x``, ``tests.conftest`` or one of their members."""
    parts = name.split(".")
    return (
        len(parts) >= 2
        and parts[0] == "tests"
        and (parts[1].startswith("test_") or parts[1] == "conftest")
    )


def test_the_rule_knows_every_way_of_importing_a_test_module() -> None:
    """The rule below catches each way of writing such an import, and passes the others."""
    cases = {
        "from tests.test_stats import at": True,
        "from tests.conftest import login": True,
        "import tests.test_sync": True,
        "from tests import test_sync": True,
        "from tests import conftest": True,
        "from .test_stats import at": True,
        "from . import conftest": True,
        "from tests.helpers import login": False,
        "from tests import helpers": False,
        "import tests.payloads": False,
        "from outreach.test_mode import x": False,
    }
    found = {source: bool(_test_imports(ast.parse(source))) for source in cases}
    assert found == cases


def _test_imports(tree: ast.Module) -> list[str]:
    """The imports of test modules in ``tree``, as written (a relative import is one
    from inside ``tests/``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            package = "tests" if node.level else (node.module or "")
            base = f"{package}.{node.module}" if node.level and node.module else package
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        if any(_is_test_module(name) for name in names):
            found.append(ast.unparse(node))
    return found


def test_no_module_imports_a_test_module() -> None:
    sources = sorted(TESTS.glob("*.py")) + sorted((ROOT / "bench").glob("*.py"))
    offending = {
        str(path.relative_to(ROOT)): imports
        for path in sources
        if (imports := _test_imports(ast.parse(path.read_text("utf-8"))))
    }
    assert offending == {}
