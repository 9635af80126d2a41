"""The layers import downwards only: metadata → devices → saxs | plans → startup (ARCHITECTURE.md).

Each layer is imported alone in a fresh interpreter, with every module under it, and the SIBYLS
modules that were loaded are checked: a lower layer never loads a higher one. Metadata is the ground
floor; of it the devices use only the rule table and the plate registry (checked in their source),
so a device never loads the record writer. SAXS science and the plans stand side by side: neither
imports the other (the RE worker never loads the analysis).
The parts of the RE Manager process (the queue gate) must not load ophyd or pyepics: the manager
forks the RE worker, and Channel Access must not be started before that.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Layer → the SIBYLS packages it must never load (itself or through anything it imports).
FORBIDDEN = {
    "metadata": ("sibyls.devices", "sibyls.saxs", "sibyls.plans", "sibyls.startup"),
    "devices": ("sibyls.saxs", "sibyls.plans", "sibyls.startup"),
    "saxs": ("sibyls.plans", "sibyls.startup"),
    "plans": ("sibyls.saxs", "sibyls.startup"),
    "startup": (),
}
#: The modules of metadata that devices may use: the shared rule table and the plate registry.
DEVICES_MAY_USE = {"sibyls.metadata.rules", "sibyls.metadata.plate_registry"}
#: Modules that do something when imported (the profile connects to the beamline): not imported here.
NOT_IMPORTED = {"sibyls.startup.profile"}

_WALK = """
import json, pkgutil, sys, importlib
layer = importlib.import_module(sys.argv[1])
skip = set(json.loads(sys.argv[2]))
failed = []
for info in pkgutil.walk_packages(layer.__path__, layer.__name__ + ".", onerror=failed.append):
    if info.name not in skip and not info.name.endswith(".__main__"):
        importlib.import_module(info.name)
print(json.dumps({
    "modules": sorted(n for n in sys.modules if n.startswith("sibyls.")),
    "failed": failed,
    "ophyd": "ophyd" in sys.modules,
    "epics": "epics" in sys.modules,
}))
"""


def fresh_import(*args: str) -> dict:
    """Run ``_WALK``-like code in a new interpreter and return what it printed (JSON)."""
    result = subprocess.run(
        [sys.executable, "-c", *args], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("layer", list(FORBIDDEN))
def test_a_layer_and_every_module_in_it_load_no_higher_layer(layer):
    loaded = fresh_import(_WALK, f"sibyls.{layer}", json.dumps(sorted(NOT_IMPORTED)))
    assert not loaded["failed"]
    above = [m for m in loaded["modules"] if m.startswith(FORBIDDEN[layer])]
    assert not above, f"importing sibyls.{layer} loads {above}"


def test_devices_use_only_the_shared_rules_of_metadata():
    used = {}
    for path in sorted((REPO / "devices").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
                if node.module == "sibyls.metadata":  # from sibyls.metadata import rules
                    names = [f"sibyls.metadata.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("sibyls.") and not name.startswith("sibyls.devices"):
                    used.setdefault(name, []).append(str(path.relative_to(REPO)))
    assert set(used) <= DEVICES_MAY_USE, used


@pytest.mark.parametrize(
    "module", ["sibyls.plans.checks", "sibyls.plans.validation", "sibyls.startup.re_manager"]
)
def test_the_queue_gate_loads_no_channel_access(module):
    loaded = fresh_import(
        f"import json, sys, {module}; "
        "print(json.dumps({'ophyd': 'ophyd' in sys.modules, 'epics': 'epics' in sys.modules}))"
    )
    assert loaded == {"ophyd": False, "epics": False}
