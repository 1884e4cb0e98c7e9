"""Loading YAML configuration: ROS parameter files (``/**: ros__parameters:``) and plain YAML,
validated against the JSON Schemas in ``config/schema/``."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from wamdiff_ros.paths import config_path, resolve


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the file, key and expectation."""


def load_yaml(path: str | os.PathLike) -> dict:
    path = resolve(path)
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def ros_parameters(data: dict, path: str | os.PathLike = "<params>", node: str = "/**") -> dict:
    """The ``ros__parameters`` mapping of ``node`` (default the wildcard ``/**``) in a param file."""
    section = data.get(node)
    if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
        raise ConfigError(f"{path}: expected '{node}: ros__parameters:' mapping (ROS 2 param file format)")
    return section["ros__parameters"]


def schema_for(param_file: str | os.PathLike) -> Path:
    """``config/schema/<name>.schema.json`` for ``config/<name>.param.yaml``."""
    name = Path(param_file).name.removesuffix(".param.yaml")
    return config_path("schema", f"{name}.schema.json")


def validate(params: dict, schema_path: str | os.PathLike, source: str = "<params>") -> dict:
    """Validate ``params`` against a JSON Schema (draft-07); fill in defaults; raise ConfigError."""
    import json

    import jsonschema

    with open(schema_path) as f:
        schema = json.load(f)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(params), key=lambda e: list(e.path))
    if errors:
        lines = [f"{source}: {'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors]
        raise ConfigError("invalid parameters:\n  " + "\n  ".join(lines))
    return {**schema_defaults(schema), **params}


def schema_defaults(schema: dict) -> dict:
    """Each property's ``default`` in a JSON Schema (properties without one are left out)."""
    return {k: v["default"] for k, v in schema.get("properties", {}).items() if "default" in v}


def load_params(param_file: str | os.PathLike, node: str = "/**") -> dict:
    """Load, validate and default-fill a ROS 2 param file against its schema."""
    path = resolve(param_file)
    params = ros_parameters(load_yaml(path), path, node)
    return validate(params, schema_for(path), str(path))
