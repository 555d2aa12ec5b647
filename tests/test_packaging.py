"""Packaging: the distribution is `metarl-lab`, the import name `metarl`, and every data file ships.

The wheel itself is built, installed into a fresh venv and run from outside the repository by
``.ci/run`` (``.ci/wheel-smoke``); these tests catch the same mistakes early and cheaply.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
from pathlib import Path

import pytest

import metarl

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_distribution_is_metarl_lab_and_imports_as_metarl() -> None:
    assert PYPROJECT["project"]["name"] == "metarl-lab"
    assert importlib.metadata.version("metarl-lab") == metarl.__version__
    assert "metarl-lab" in importlib.metadata.packages_distributions()["metarl"]
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts["metarl"] == "metarl.cli:main"


def test_every_data_file_in_a_package_is_declared_package_data() -> None:
    setuptools = PYPROJECT["tool"]["setuptools"]
    package_dirs = {pkg: ROOT / setuptools["package-dir"].get(pkg, pkg.replace(".", "/")) for pkg in setuptools["packages"]}
    for name, top in setuptools["package-dir"].items():  # sub-packages of mapped folders
        for pkg in setuptools["packages"]:
            if pkg.startswith(name + "."):
                package_dirs[pkg] = ROOT / top / pkg[len(name) + 1:].replace(".", "/")
    undeclared = []
    for pkg, folder in package_dirs.items():
        patterns = setuptools["package-data"].get(pkg, [])
        for path in folder.rglob("*"):
            rel = path.relative_to(folder).as_posix()
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in rel:
                continue
            owner = next((p for p, d in package_dirs.items() if path.is_relative_to(d) and len(d.parts) > len(folder.parts)), None)
            if owner is not None:
                continue  # belongs to a sub-package, checked there
            if not any(fnmatch.fnmatch(rel, pat) for pat in patterns):
                undeclared.append(f"{pkg}: {rel}")
    assert not undeclared, f"data files that the wheel would leave out: {undeclared}"
    shipped = {p.name for p in (ROOT / "envs" / "held_out").glob("*.json")}
    assert len(shipped) >= 14 and (ROOT / "metarl" / "py.typed").is_file()
