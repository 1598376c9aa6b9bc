"""Typed settings: one dataclass per config section, the schema the only home of defaults."""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml

from conftest import REPO
from foldatlas import settings as S
from foldatlas.config import load_schema
from foldatlas.errors import ConfigError, InternalError
from foldatlas.layout import CHUNK_ID_PATTERN, Layout, StoreLayout, chunk_id, parse_chunk_id
from foldatlas.slurm import runtime_request

#: config section -> its settings class
SECTIONS = {
    "output": S.OutputSettings,
    "store": S.StoreSettings,
    "ingest": S.IngestSettings,
    "chunks": S.ChunkSettings,
    "fold": S.FoldSettings,
    "embeddings": S.EmbeddingSettings,
    "filter": S.FilterSettings,
    "atlas": S.AtlasSettings,
    "structures": S.StructureSettings,
    "foldseek": S.FoldseekSettings,
    "mmseqs": S.MmseqsSettings,
    "slurm": S.SlurmSettings,
}
#: settings of nested sections: (section path, class)
NESTED = {("chunks", "cost"): S.CostModel, ("foldseek", "cluster"): S.FoldseekClusterSettings, ("foldseek", "search"): S.FoldseekSearchSettings}


def schema_defaults(*path: str) -> dict:
    node = load_schema()
    for key in path:
        node = node["properties"][key]
    return {k: v.get("default") for k, v in node["properties"].items()}


def test_every_config_section_has_a_settings_class():
    assert sorted(load_schema()["properties"]) == sorted([*SECTIONS, "input"])


@pytest.mark.parametrize("path, cls", [((k,), v) for k, v in SECTIONS.items()] + list(NESTED.items()), ids=lambda x: str(x))
def test_fields_match_the_schema_and_no_default_disagrees(path, cls):
    defaults = schema_defaults(*path)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert sorted(fields) == sorted(defaults), f"{cls.__name__} fields differ from the {'.'.join(path)} section"
    for name, f in fields.items():
        if f.default is not dataclasses.MISSING:
            assert f.default == defaults[name], f"{cls.__name__}.{name} default {f.default!r} != schema {defaults[name]!r}"


@pytest.mark.parametrize("section, cls", SECTIONS.items())
def test_from_an_empty_section_gives_the_schema_defaults(section, cls):
    got = cls.from_config({})
    defaults = schema_defaults(section)
    for name in defaults:
        value = getattr(got, name)
        if dataclasses.is_dataclass(value):
            value = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(value).items()}
        elif isinstance(value, tuple):
            value = list(value)
        want = defaults[name]
        if section == "fold" and name == "chunk_size" and want == 0:
            want = None
        if isinstance(want, dict):
            want = {**schema_defaults(section, name), **want}
        assert value == want, f"{section}.{name}"


def test_shipped_config_holds_the_schema_defaults():
    """config/config.yaml documents every key with its default value; it cannot drift."""
    shipped = yaml.safe_load((REPO / "config/config.yaml").read_text())

    def walk(node: dict, schema: dict, path: str) -> None:
        for key, sub in schema["properties"].items():
            here = f"{path}{key}"
            assert key in node, f"config/config.yaml lacks {here}"
            if sub.get("type") == "object" and "properties" in sub:
                walk(node[key], sub, here + ".")
            else:
                assert node[key] == sub["default"], f"config/config.yaml: {here} = {node[key]!r}, schema default {sub['default']!r}"

    walk(shipped, load_schema(), "")


def test_errors_name_the_full_key():
    with pytest.raises(ConfigError, match=r"config key 'fold\.num_recycles' = -1 is out of range") as info:
        S.FoldSettings.from_config({"num_recycles": -1})
    assert info.value.key == "fold.num_recycles"
    with pytest.raises(ConfigError, match=r"unknown config key 'filter\.min_pldt' \(did you mean 'min_plddt'\?\)"):
        S.FilterSettings.from_config({"min_pldt": 0.5})
    with pytest.raises(ConfigError, match=r"'chunks\.cost\.cubic'"):
        S.ChunkSettings.from_config({"cost": {"cubic": -1}})


def test_min_length_above_max_length_names_both_keys():
    with pytest.raises(ConfigError, match=r"'ingest\.min_length' = 500 and 'ingest\.max_length' = 100") as info:
        S.IngestSettings.from_config({"min_length": 500, "max_length": 100})
    assert info.value.key == "ingest.min_length"


def test_settings_are_frozen():
    s = S.FilterSettings.from_config({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.min_plddt = 0.1  # type: ignore[misc]


def test_layout_puts_every_path_under_its_root(tmp_path):
    layout = Layout(tmp_path / "elsewhere")
    store = layout.store("0123456789abcdef")
    paths = [layout.records, layout.sequences, layout.chunks, layout.plan, layout.planned_release, layout.release, layout.chunk_file("000001"),
             layout.partial("000001"), *dataclasses.astuple(store.chunk_outputs("000001"))[1:4], store.manifest, store.key,
             store.release_file("r0001"), store.release_keys("r0001"), *dataclasses.astuple(layout.atlas), layout.accounting,
             layout.report, layout.foldseek_db, layout.foldseek_clusters, layout.foldseek_hits, layout.mmseqs_clusters,
             layout.log("fold_chunk", "000001"), layout.benchmark("assemble_atlas"), layout.scratch("plan_chunks")]  # fmt: skip
    assert all(p.is_relative_to(tmp_path / "elsewhere") for p in paths)
    assert len(set(paths)) == len(paths)
    assert store.chunk_outputs("000042").chunk == 42
    back = type(store).of_chunk_outputs(store.chunk_outputs("000042").predictions)
    assert (back.root, back.fingerprint) == (store.root, store.fingerprint)
    assert store.dir == tmp_path / "elsewhere" / "store" / "0123456789abcdef"
    assert Layout(tmp_path / "r", tmp_path / "shared").store("f").dir == tmp_path / "shared" / "f"


def test_chunk_ids_run_past_a_million_and_keep_the_six_digit_names(tmp_path):
    """Ids have six digits at least (the folder names of 0.4.0 stores stay valid) and no
    upper bound: 999999 and 1000000 round-trip through id, parse, the {chunk} wildcard
    as Snakemake matches it and the layout; chunk folders list in numeric order."""
    from snakemake.io import regex_from_filepattern, update_wildcard_constraints

    assert "chunk=CHUNK_ID_PATTERN," in (REPO / "workflow/rules/common.smk").read_text()
    layout = Layout(tmp_path)
    store = layout.store("f" * 16)
    wildcard = re.compile(regex_from_filepattern(update_wildcard_constraints(str(layout.chunk_file("{chunk}")), {}, {"chunk": CHUNK_ID_PATTERN})))
    for n, cid in [(0, "000000"), (42, "000042"), (999999, "999999"), (10**6, "1000000"), (123456789, "123456789")]:
        assert chunk_id(n) == cid and parse_chunk_id(cid) == n
        assert wildcard.match(str(layout.chunk_file(cid)))["chunk"] == cid
        assert store.chunk_outputs(cid).chunk == n
        assert StoreLayout.of_chunk_outputs(store.chunk_outputs(cid).predictions).dir == store.dir
    for bad in ("42", "0000042", "01000000", "00004a", "\u0660" * 6, ""):
        assert wildcard.match(str(layout.chunk_file(bad))) is None, bad
        with pytest.raises(ValueError, match="expected a chunk id"):
            parse_chunk_id(bad)
    for n in (10**7, 999999, 5, 10**6, 0):
        (store.dir / "chunks" / f"chunk_{chunk_id(n)}").mkdir(parents=True)
    (store.dir / "chunks" / "chunk_notes").mkdir()
    assert store.chunk_numbers() == [0, 5, 999999, 10**6, 10**7]


def test_runtime_requests_grow_with_the_attempt_up_to_slurm_max_runtime():
    """Every rule asks runtime x attempt through one function, capped by slurm.max_runtime:
    a third attempt never asks more than the partition's limit."""
    assert [runtime_request(120, a, None) for a in (1, 2, 3)] == [120, 240, 360]
    assert [runtime_request(120, a, 300) for a in (1, 2, 3)] == [120, 240, 300]
    assert runtime_request(15.2, 1, None) == 16  # rounded up: never less than estimated
    assert runtime_request(500, 1, 300) == 300  # a fold estimate above the cap asks for the cap
    for minutes, attempt in ((0, 1), (-5, 1), (float("nan"), 1), (10, 0)):
        with pytest.raises(InternalError):
            runtime_request(minutes, attempt, None)
    assert S.SlurmSettings.from_config({"max_runtime": 2880}).max_runtime == 2880
    with pytest.raises(ConfigError, match="slurm.max_runtime"):
        S.SlurmSettings.from_config({"max_runtime": 0})
    rules = {f.name: f.read_text() for f in (REPO / "workflow/rules").glob("*.smk")}
    requests = [line.strip() for text in rules.values() for line in text.splitlines() if line.strip().startswith("runtime=")]
    # annotate rules size their runtime from their input (sized_runtime, which calls runtime_minutes)
    assert all(re.fullmatch(r"runtime=lambda wc, attempt: runtime_minutes\(.+, attempt\),|runtime=sized_runtime\(.+\),", r) for r in requests), requests
    sized = (REPO / "workflow/rules/common.smk").read_text().split("def sized_runtime")[1].split("\ndef ")[0]
    assert "runtime_minutes(" in sized
    assert sum(len(re.findall(r"^(?:rule|checkpoint) \w+:", text, re.M)) for text in rules.values()) == len(requests) > 0


def test_fold_outputs_key_holds_exactly_what_can_change_a_fold_jobs_outputs():
    """The key (a param of fold_chunk) ignores the operational fold keys and key order,
    and changes with every other fold key and with embeddings and structures."""
    from foldatlas.config import validate_config

    base = validate_config({})
    fold_keys = set(load_schema()["properties"]["fold"]["properties"])
    assert S.FoldSettings.OPERATIONAL < fold_keys
    key = S.fold_outputs_key(base)
    reordered = {**base, "fold": dict(reversed(list(base["fold"].items())))}
    assert S.fold_outputs_key(reordered) == key
    for name in S.FoldSettings.OPERATIONAL:
        other = {**base, "fold": {**base["fold"], name: "changed"}}
        assert S.fold_outputs_key(other) == key, name
    for name in fold_keys - S.FoldSettings.OPERATIONAL:
        other = {**base, "fold": {**base["fold"], name: "changed"}}
        assert S.fold_outputs_key(other) != key, name
    for section in ("embeddings", "structures"):
        assert S.fold_outputs_key({**base, section: {**base[section], "x": 1}}) != key

