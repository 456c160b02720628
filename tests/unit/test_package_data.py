"""The console's assets ship in the package: pyproject's package-data covers every one."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

from jetwatch.ops import server

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "jetwatch" / "ops" / "static"


def test_every_static_file_is_package_data_and_served() -> None:
    """A wheel (and so the Docker image) holds what the console serves; nothing from a CDN."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["jetwatch.ops"]
    files = sorted(p.relative_to(STATIC.parent).as_posix() for p in STATIC.iterdir())
    assert files
    assert [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)] == []
    assert sorted(server._ASSETS) == sorted(p.name for p in STATIC.iterdir())
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text
