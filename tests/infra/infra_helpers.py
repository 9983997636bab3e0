"""Read the Bicep under infra/ as data (pycep-parser's JSON form) for the infra tests.

pycep gives expressions as nested dicts: ``{"function": {"type": "union", "parameters":
{"arg_1": ..., "arg_2": ...}}}``, ``{"operator": {"type": "property_accessor", "operands":
{"operand_1": "roles", "operand_2": "storageBlobDataOwner"}}}``; object literals are plain dicts
and identifiers and string literals are both plain strings.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.cache
def parse(relative: str) -> dict[str, Any]:
    """Parse ``infra/<relative>`` (cached: the files do not change during a test run)."""
    return BicepParser().parse(file_path=INFRA / relative)


def is_expression(node: Any) -> bool:
    return isinstance(node, dict) and ("function" in node or "operator" in node)


def accessor_path(node: Any) -> list[str]:
    """``a.b.c`` as ``["a", "b", "c"]``; ``[]`` when ``node`` is not a property access."""
    if isinstance(node, str):
        return [node]
    if not (isinstance(node, dict) and "operator" in node):
        return []
    operator = node["operator"]
    if operator.get("type") != "property_accessor":
        return []
    operands = operator["operands"]
    return accessor_path(operands["operand_1"]) + accessor_path(operands["operand_2"])


def object_keys(node: Any) -> dict[str, Any]:
    """The literal keys of an object expression, following ``union(...)`` arguments."""
    if isinstance(node, dict) and "function" in node:
        function = node["function"]
        if function.get("type") != "union":
            return {}
        found: dict[str, Any] = {}
        for arg in function["parameters"].values():
            found.update(object_keys(arg))
        return found
    if isinstance(node, dict) and not is_expression(node):
        return dict(node)
    return {}


def resources_of_type(parsed: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in parsed["resources"].items()
            if res["type"] == resource_type}


def body(resource: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """``(config, condition)`` of a resource or module; condition is ``None`` when it has none."""
    config = resource["config"]
    if "condition" in config:
        return config["config"], config["condition"]
    return config, None


def variable(parsed: dict[str, Any], name: str) -> Any:
    return parsed["variables"][name]["value"]
