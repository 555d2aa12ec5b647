"""Every docstring example in the installed package runs (as Gymnasium runs its doctests).

Modules are imported by their package names (``metarl.envs.bandit``, not ``envs.bandit``), which
``pytest --doctest-modules`` cannot do for the ``package-dir`` mapping.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest


def _modules() -> list[str]:
    import metarl.agents
    import metarl.envs

    names = {"metarl", "metarl.envs", "metarl.agents"}
    for pkg in (metarl, metarl.envs, metarl.agents):
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + "."):
            names.add(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ImportError as e:  # an optional extra (ray, metaworld) that is not installed
        pytest.skip(f"optional dependency missing for {name}: {e}")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
