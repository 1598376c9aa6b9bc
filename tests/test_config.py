"""Configuration validation: defaults, ranges, unknown keys."""

from __future__ import annotations

import pytest
import yaml

from conftest import REPO
from foldatlas.config import load_schema, validate_config
from foldatlas.errors import ConfigError

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def test_every_key_has_description_and_default():
    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            here = f"{path}.{key}" if path else key
            assert sub.get("description"), f"{here} has no description"
            assert "default" in sub, f"{here} has no default"
            walk(sub, here)

    walk(load_schema(SCHEMA), "")


def test_defaults_fill_an_empty_config():
    cfg = validate_config({}, SCHEMA)
    assert cfg["ingest"]["max_length"] == 1280
    assert cfg["fold"]["num_recycles"] == 3  # 4 trunk passes, ESMFold v1's own default
    assert cfg["chunks"]["cost"]["cubic"] > 0


def test_shipped_configs_are_valid():
    for name in ("config.yaml", "demo.yaml"):
        validate_config(yaml.safe_load((REPO / "config" / name).read_text()), SCHEMA)


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"ingest": {"max_length": -5}}, "config key 'ingest.max_length' = -5 is out of range: expected an integer in [1, 100000]"),
        ({"chunks": {"gpu_seconds": 0}}, "config key 'chunks.gpu_seconds' = 0 is out of range: expected a number in (0, 1000000]"),
        ({"fold": {"artefact_max_plddt": 70}}, "config key 'fold.artefact_max_plddt' = 70 is out of range: expected a number in [0, 1]"),
        ({"ingest": {"max_lenght": 100}}, "unknown config key 'ingest.max_lenght' (did you mean 'max_length'?)"),
        ({"fodl": {}}, "unknown config key 'fodl' (did you mean 'fold'?)"),
        ({"ingest": {"min_length": "ten"}}, "config key 'ingest.min_length' = 'ten' has the wrong type: expected integer, found str"),
        ({"ingest": {"on_invalid": "ignore"}}, "config key 'ingest.on_invalid' = 'ignore': expected one of ['skip', 'fail']"),
        ({"fold": {"device": "gpu0"}}, "config key 'fold.device' = 'gpu0'"),
        ({"input": {"fasta": []}}, "config key 'input.fasta' = []"),
    ],
)
def test_bad_values_name_key_value_and_range(cfg, message):
    with pytest.raises(ConfigError) as info:
        validate_config(cfg, SCHEMA)
    assert message in str(info.value)


def test_all_errors_reported_at_once():
    with pytest.raises(ConfigError) as info:
        validate_config({"ingest": {"min_length": 0, "max_length": 0}}, SCHEMA)
    text = str(info.value)
    assert "ingest.min_length" in text and "ingest.max_length" in text


def test_config_readme_documents_every_key():
    from foldatlas.config import schema_markdown

    text = (REPO / "config/README.md").read_text()
    generated = text.split("<!-- BEGIN GENERATED -->\n")[1].split("<!-- END GENERATED -->")[0]
    assert generated == schema_markdown(load_schema(SCHEMA)), "config/README.md is stale: run make config-docs"


def test_readme_documents_every_parquet_schema():
    from foldatlas.tables import schemas_markdown

    text = (REPO / "README.md").read_text()
    generated = text.split("<!-- BEGIN SCHEMAS -->\n")[1].split("<!-- END SCHEMAS -->")[0]
    assert generated == schemas_markdown(), "README.md schemas are stale: run make config-docs"
