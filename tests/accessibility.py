"""axe-core (vendored from the npm registry, tests only) run in the page under test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"


def grave_violations(page: Page) -> list[dict[str, Any]]:
    """The serious and critical violations axe-core finds on what the page shows."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        # Through the devtools protocol: the page's CSP forbids inline scripts.
        page.evaluate(AXE.read_text("utf-8"))
    found: list[dict[str, Any]] = page.evaluate(
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact,"
        " nodes: v.nodes.map(n => n.target.join(' '))})))"
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]
