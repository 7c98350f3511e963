"""Runs the Argo CD health check (hack/argocd/...) the way Argo CD does: `obj` is a
global table holding the object, the script returns {status, message}.

Argo CD runs Lua 5.1 (gopher-lua); so does this, through Debian's lua5.1.
"""

import math
import subprocess
from typing import Any

from tests.chart.tools import ARGOCD_CHECK, ToolFailed, system_binary

HEALTH_LUA = ARGOCD_CHECK / "health.lua"


def lua_string(text: str) -> str:
    """A Lua 5.1 string literal: UTF-8 as is, quotes and control characters escaped."""
    escaped = "".join(
        "\\" + ch if ch in '"\\' else f"\\{ord(ch):03d}" if ord(ch) < 32 or ord(ch) == 127 else ch
        for ch in text
    )
    return f'"{escaped}"'


def lua_literal(value: Any) -> str:
    """A Lua table constructor for JSON-like data (null, as in Argo CD, is absent)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value} has no JSON form")
        return repr(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        items = (f"[{lua_string(str(k))}] = {lua_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as Lua")


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) as Argo CD would show them for this object."""
    program = (
        f"obj = {lua_literal(obj)}\n"
        f"local hs = dofile({lua_string(str(HEALTH_LUA))})\n"
        'io.write(hs.status, "\\n", hs.message or "")\n'
    )
    result = subprocess.run(
        [str(system_binary("lua5.1", "lua5.1")), "-"],
        input=program,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        raise ToolFailed(f"health.lua failed: {result.stderr}")
    status, _, message = result.stdout.partition("\n")
    return status, message
