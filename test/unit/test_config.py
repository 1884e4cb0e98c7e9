"""Every ROS param file validates against its JSON Schema, and schemas reject unknown keys."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from wamdiff_ros.config import ConfigError, load_params, ros_parameters, schema_for, validate

CONFIG = Path(__file__).resolve().parents[2] / "config"
PARAM_FILES = sorted(CONFIG.glob("*.param.yaml"))


def test_there_are_param_files():
    assert PARAM_FILES, "config/*.param.yaml missing"


@pytest.mark.parametrize("path", PARAM_FILES, ids=lambda p: p.name)
def test_param_file_matches_schema(path):
    schema_path = schema_for(path)
    assert schema_path.exists(), f"{path.name} has no schema at {schema_path}"
    schema = json.loads(schema_path.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema.get("additionalProperties") is False, "schemas must reject unknown keys"
    params = ros_parameters(yaml.safe_load(path.read_text()), path)
    validate(params, schema_path, str(path))
    # Every parameter is documented with a default and a description (Autoware convention).
    for name, prop in schema["properties"].items():
        assert "default" in prop and prop.get("description"), f"{schema_path.name}: {name} lacks default/description"
        assert name in params, f"{path.name} does not set {name} (keep the param file complete)"
        assert params[name] == prop["default"], f"{path.name}: {name} differs from the schema default"


@pytest.mark.parametrize("path", PARAM_FILES, ids=lambda p: p.name)
def test_unknown_key_is_rejected_with_its_name(path):
    params = ros_parameters(yaml.safe_load(path.read_text()), path)
    params = {**params, "not_a_parameter": 1}
    with pytest.raises(ConfigError, match="not_a_parameter"):
        validate(params, schema_for(path), str(path))


def test_out_of_range_value_names_the_key():
    with pytest.raises(ConfigError, match="plan_rate_hz"):
        validate({"plan_rate_hz": -1.0}, schema_for("planner.param.yaml"))


def test_load_params_fills_defaults_and_requires_ros_parameters(tmp_path):
    assert load_params("planner.param.yaml")["backend"] == "onnxruntime"
    bad = tmp_path / "planner.param.yaml"
    bad.write_text("planner:\n  backend: torch\n")
    with pytest.raises(ConfigError, match="ros__parameters"):
        load_params(bad)
