"""metarl.agents: one module per meta-learning algorithm.

Agent classes are imported on first use (``from metarl.agents import MAML``), so importing the
package stays cheap and the agents never import each other.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> module (inside metarl.agents) that defines it.
_EXPORTS: dict[str, str] = {
    "EMAML": "emaml",
    "EMAMLConfig": "emaml",
    "MAML": "maml",
    "MAMLConfig": "maml",
    "ProMP": "promp",
    "ProMPConfig": "promp",
    "Reptile": "reptile",
    "ReptileConfig": "reptile",
    "RL2": "rl2",
    "RL2Config": "rl2",
    "PEARL": "pearl",
    "PEARLConfig": "pearl",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
