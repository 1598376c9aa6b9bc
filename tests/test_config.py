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


def _number_keys(node, path=()):
    for key, sub in node.get("properties", {}).items():
        here = (*path, key)
        types = [sub.get("type")] + [s.get("type") for s in sub.get("anyOf", [])]
        if any(t in ("number", "integer") for t in types):
            yield here
        yield from _number_keys(sub, here)


def _nested(path, value):
    cfg = value
    for key in reversed(path):
        cfg = {key: cfg}
    return cfg


@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf"])
def test_every_number_refuses_nan_and_infinity(text):
    """JSON-schema range checks are false for NaN: before, `filter.min_plddt: .nan` passed."""
    value = yaml.safe_load(text)
    keys = list(_number_keys(load_schema(SCHEMA)))
    assert len(keys) > 30
    for path in keys:
        dotted = ".".join(path)
        with pytest.raises(ConfigError) as info:
            validate_config(_nested(path, value), SCHEMA)
        assert f"config key '{dotted}' = {value!r} is not a finite number" in str(info.value), dotted
        assert info.value.key == dotted


def test_settings_refuse_nan_too():
    from foldatlas.settings import FilterSettings, FoldSettings

    with pytest.raises(ConfigError, match=r"config key 'filter\.min_plddt' = nan is not a finite number"):
        FilterSettings.from_config({"min_plddt": float("nan")})
    with pytest.raises(ConfigError, match=r"config key 'fold\.commit_seconds' = inf is not a finite number"):
        FoldSettings.from_config({"commit_seconds": float("inf")})


def test_min_length_above_max_length_names_both_keys_at_start_up():
    with pytest.raises(ConfigError, match=r"config keys 'ingest\.min_length' = 300 and 'ingest\.max_length' = 200: expected min_length <= max_length"):
        validate_config({"ingest": {"min_length": 300, "max_length": 200}}, SCHEMA)


@pytest.mark.parametrize(
    "text",
    [
        # "billion laughs": 9**8 = 43 million strings once expanded, a few hundred bytes of YAML
        "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n"
        + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefg", "bcdefgh"))
        + "input: {fasta: *h}\n",
        "input:\n  fasta: &x [a.fa, *x]\n",  # holds itself
    ],
)
def test_alias_bombs_are_refused_quickly_with_a_short_message(text, tmp_path):
    import resource
    import time

    from snakemake.common.configfile import load_configfile

    (tmp_path / "bomb.yaml").write_text(text)
    config = load_configfile(str(tmp_path / "bomb.yaml"))  # as Snakemake loads a configfile: aliases stay shared
    started, rss = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for top in (config, {"input": config["input"]}):
        with pytest.raises(ConfigError, match="alias bomb or a self-referencing alias") as info:
            validate_config(top, SCHEMA)
        assert len(str(info.value)) < 500
    assert time.monotonic() - started < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 200_000  # KiB: no expansion in memory


def test_echoed_values_are_bounded():
    with pytest.raises(ConfigError) as info:
        validate_config({"fold": {"device": "x" * 1_000_000}, "input": {"fasta": [1] * 100_000}}, SCHEMA)
    text = str(info.value)
    assert len(text) < 5000 and "more problems" in text


def test_json_writer_refuses_nan_and_names_the_key(tmp_path):
    from foldatlas.atomic import json_text, write_json
    from foldatlas.errors import InternalError

    assert json_text({"a": [1, 2.5]}) == '{\n  "a": [\n    1,\n    2.5\n  ]\n}\n'
    with pytest.raises(InternalError, match=r"refusing to write nan at thresholds\.min_plddt into JSON"):
        write_json(tmp_path / "s.json", {"counts": {"n": 1}, "thresholds": {"min_plddt": float("nan")}})
    with pytest.raises(InternalError, match=r"inf at timings\[1\]"):
        json_text({"timings": [0.0, float("inf")]})
    assert not list(tmp_path.iterdir())


def test_validated_config_has_the_schema_key_order_whatever_the_file_order():
    from foldatlas.config import schema_order

    schema = load_schema()
    cfg = validate_config({"filter": {"min_ptm": 0.5, "min_plddt": 0.6}, "fold": {"threads": 2, "model": "tiny"}})
    assert list(cfg) == [k for k in schema["properties"] if k in cfg]
    assert list(cfg["filter"]) == list(schema["properties"]["filter"]["properties"])
    assert list(cfg["fold"]) == list(schema["properties"]["fold"]["properties"])
    # keys the schema does not name (free-form mappings) follow, sorted; lists keep their order
    assert list(schema_order({"b": 1, "a": {"z": 1, "y": 2}, "l": [3, 1]}, {"properties": {"l": {}}})) == ["l", "a", "b"]
    assert list(schema_order({"a": {"z": 1, "y": 2}}, {})["a"]) == ["y", "z"]
    assert schema_order({"l": [3, 1]}, {})["l"] == [3, 1]
