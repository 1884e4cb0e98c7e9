"""ROS parameters declared from the node's JSON Schema (config/schema/<node>.schema.json).

The schema is the one source of truth: each property becomes a parameter with its default, its
description, a FloatingPointRange / IntegerRange from ``minimum``/``maximum`` and the remaining
constraints (enums, patterns, exclusive bounds) spelled out in ``additional_constraints``. rclpy
enforces type and range; every set additionally passes through :func:`validate_change`, which runs
the full schema and rejects the change with the schema's reason.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from wamdiff_ros.config import ConfigError
from wamdiff_ros.paths import config_path

_SCALARS = {
    "boolean": ParameterType.PARAMETER_BOOL,
    "integer": ParameterType.PARAMETER_INTEGER,
    "number": ParameterType.PARAMETER_DOUBLE,
    "string": ParameterType.PARAMETER_STRING,
}
_ARRAYS = {
    "boolean": ParameterType.PARAMETER_BOOL_ARRAY,
    "integer": ParameterType.PARAMETER_INTEGER_ARRAY,
    "number": ParameterType.PARAMETER_DOUBLE_ARRAY,
    "string": ParameterType.PARAMETER_STRING_ARRAY,
}


def schema_path(node: str) -> Path:
    """``config/schema/<node>.schema.json`` (``node`` without the ``_node`` suffix, e.g. ``planner``)."""
    return config_path("schema", f"{node}.schema.json")


def load_schema(path: str | os.PathLike) -> dict:
    with open(path) as f:
        schema = json.load(f)
    if not isinstance(schema.get("properties"), dict):
        raise ConfigError(f"{path}: expected a JSON Schema with 'properties'")
    return schema


def parameter_type(name: str, prop: dict) -> int:
    """The rcl ``ParameterType`` of a schema property."""
    kind = prop.get("type")
    if kind == "array":
        item = prop.get("items", {}).get("type")
        if item in _ARRAYS:
            return _ARRAYS[item]
    elif kind in _SCALARS:
        return _SCALARS[kind]
    raise ConfigError(f"schema property {name!r}: type {kind!r} has no ROS parameter equivalent")


def descriptor(name: str, prop: dict) -> ParameterDescriptor:
    """A ParameterDescriptor carrying the property's description, range and other constraints."""
    ptype = parameter_type(name, prop)
    d = ParameterDescriptor(name=name, type=ptype, description=str(prop.get("description", "")))
    lo = prop.get("minimum", prop.get("exclusiveMinimum"))
    hi = prop.get("maximum", prop.get("exclusiveMaximum"))
    constraints = []
    if ptype == ParameterType.PARAMETER_DOUBLE and (lo is not None or hi is not None):
        d.floating_point_range = [
            FloatingPointRange(
                from_value=float(lo) if lo is not None else -sys.float_info.max,
                to_value=float(hi) if hi is not None else sys.float_info.max,
                step=0.0,
            )
        ]
    elif ptype == ParameterType.PARAMETER_INTEGER and (lo is not None or hi is not None):
        d.integer_range = [
            IntegerRange(
                from_value=int(lo) if lo is not None else -(2**63),
                to_value=int(hi) if hi is not None else 2**63 - 1,
                step=1,
            )
        ]
    if "exclusiveMinimum" in prop:
        constraints.append(f"> {prop['exclusiveMinimum']}")
    if "exclusiveMaximum" in prop:
        constraints.append(f"< {prop['exclusiveMaximum']}")
    if "enum" in prop:
        constraints.append("one of: " + ", ".join(map(str, prop["enum"])))
    if "pattern" in prop:
        constraints.append(f"matches {prop['pattern']}")
    if "minLength" in prop:
        constraints.append(f"at least {prop['minLength']} character(s)")
    if "minItems" in prop:
        constraints.append(f"at least {prop['minItems']} item(s)")
    d.additional_constraints = "; ".join(constraints)
    return d


def declare_from_schema(node: Node, schema: dict, source: str = "<schema>") -> dict:
    """Declare every schema property on ``node`` (overrides from --params-file / -p apply) and return
    the values; raises ConfigError naming the parameter if the resulting set violates the schema."""
    for name, prop in schema["properties"].items():
        node.declare_parameter(name, prop.get("default"), descriptor(name, prop))
    values = current_values(node, schema)
    _validate(values, schema, source)
    return values


def current_values(node: Node, schema: dict) -> dict:
    return {name: _plain(node.get_parameter(name).value) for name in schema["properties"]}


def validate_change(node: Node, schema: dict, params: list[Parameter], source: str) -> SetParametersResult:
    """Accept ``params`` only if the node's parameters with them applied satisfy the schema."""
    values = current_values(node, schema)
    for p in params:
        if p.name in schema["properties"]:
            values[p.name] = _plain(p.value)
    try:
        _validate(values, schema, source)
    except ConfigError as e:
        return SetParametersResult(successful=False, reason=str(e))
    return SetParametersResult(successful=True)


def _validate(values: dict, schema: dict, source: str) -> None:
    import jsonschema

    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(values), key=lambda e: list(e.path))
    if errors:
        lines = [f"{source}: {'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors]
        raise ConfigError("invalid parameters:\n  " + "\n  ".join(lines))


def _plain(value):
    """rclpy array values (array.array, tuples) as plain lists, so JSON Schema sees arrays."""
    if isinstance(value, str | bytes | bool | int | float) or value is None:
        return value
    return list(value)
