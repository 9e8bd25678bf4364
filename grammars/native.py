"""Whether decc uses its optional C extensions (the trie walk, the loop lookup, the Earley step, the subset
construction, the rule builder: rtn.py's tail_c).

Each module imports its extension itself (None when the install had no C compiler) and keeps the Python
version as the fallback and the tests' oracle; `DECC_PURE_PYTHON=1`, read at import, turns them all off.
"""

from __future__ import annotations

import os
from types import ModuleType


def use_native(compiled: ModuleType | None) -> bool:
    """A built extension, unless `DECC_PURE_PYTHON` asks for the Python versions."""
    return compiled is not None and os.environ.get("DECC_PURE_PYTHON", "") in ("", "0")


__all__ = ["use_native"]
