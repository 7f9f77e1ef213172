"""The core must not import scapy or rich (DESIGN: sans-I/O core, edges at capture/live/render/cli)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import tlsscope

EDGE_PREFIXES = ("tlsscope.render", "tlsscope.cli", "tlsscope.live", "tlsscope.capture.live",
                 "tlsscope.notebook", "tlsscope.__main__")


def core_modules() -> list[str]:
    names = []
    for mod in pkgutil.walk_packages(tlsscope.__path__, "tlsscope."):
        if not mod.name.startswith(EDGE_PREFIXES):
            names.append(mod.name)
    return names


def test_core_imports_without_scapy_and_rich():
    mods = core_modules()
    assert "tlsscope.connection" in mods and "tlsscope.tls.records" in mods
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('scapy', 'rich'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import importlib\n"
        f"for m in {mods!r}:\n"
        "    importlib.import_module(m)\n"
        "print('ok', len(sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok")
