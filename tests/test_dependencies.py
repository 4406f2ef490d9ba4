"""Dependency hygiene (issue 8, point 13): every requirement pinned, and installed as pinned.

The vulnerability check itself (``make audit-deps``, pip-audit) needs a network this
build machine does not have; docs/security.md says where and how it runs.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[a-z,]+\])?==(?P<version>[0-9][^\s;]*)$")


def _requirements() -> list[tuple[str, str, str]]:
    found = []
    for file in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / file).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-r "):
                continue
            match = PIN.match(line)
            assert match, f"{file}: not pinned to one version: {line!r}"
            found.append((file, match["name"], match["version"]))
    return found


def test_every_requirement_is_pinned_and_installed_as_pinned() -> None:
    requirements = _requirements()
    assert len(requirements) > 30
    for file, name, version in requirements:
        assert metadata.version(name) == version, f"{file}: {name} installed is not {version}"
