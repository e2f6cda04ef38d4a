"""Every name YOLOv5 v7.0 code imports from the v7.0 modules stays importable where the project offered it."""

from __future__ import annotations

import importlib
import json

import pytest

from tests.conftest import FIXTURES

NAMES = json.loads((FIXTURES / "public_names.json").read_text())


@pytest.mark.parametrize("module", sorted(NAMES))
def test_names_stay_importable(module):
    """`from <module> import <name>` works for each name the module offered before the layering."""
    mod = importlib.import_module(module)
    # `from m import n` is getattr(m, n), so hasattr also sees the names a module's __getattr__ serves lazily
    missing = [name for name in NAMES[module] if not hasattr(mod, name)]
    assert not missing, f"{module} no longer offers {missing}"
