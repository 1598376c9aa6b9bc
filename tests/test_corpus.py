"""Every case of the bad-input corpus (tests/corpus/cases.py) has its documented outcome."""

from __future__ import annotations

import re
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO
from corpus.cases import CASES, Case, table, write_case
from foldatlas.chunking import plan_chunks
from foldatlas.config import validate_config
from foldatlas.errors import FoldatlasError
from foldatlas.fasta import expand_inputs
from foldatlas.ingest import read_fasta_file
from foldatlas.settings import ChunkSettings, IngestSettings

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def ingest(case: Case, tmp) -> list[str]:
    """Start-up checks and ingest, as the workflow runs them; returns record statuses."""
    cfg = validate_config(yaml.safe_load((REPO / "config/config.yaml").read_text()) | case.config, SCHEMA)
    inputs = write_case(case, tmp)
    files = expand_inputs(inputs, base=tmp)
    parts = []
    ingest = IngestSettings.from_config(cfg["ingest"])
    for k, f in enumerate(files):
        part = tmp / f"part{k}.parquet"
        read_fasta_file(tmp / f, part, source=f, source_index=k, settings=ingest, workers=1)
        parts.append(part)
    plan_chunks(parts, records_out=tmp / "records.parquet", sequences_out=tmp / "sequences.parquet", chunks_dir=tmp / "chunks",
                settings=ChunkSettings.from_config(cfg["chunks"]), memory_gb=0.5)  # fmt: skip
    return pq.read_table(tmp / "records.parquet", columns=["status"])["status"].to_pylist()


def test_corpus_has_at_least_30_cases():
    assert len(CASES) >= 30 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_outcome(case, tmp_path):
    if case.error:
        with pytest.raises(FoldatlasError) as info:
            ingest(case, tmp_path)
        assert re.search(case.error, str(info.value)), str(info.value)
        assert "Traceback" not in str(info.value)
        assert not (tmp_path / "records.parquet").exists()
        assert not [p for p in tmp_path.rglob(".*tmp-*")], "a half-written file was left behind"
    else:
        assert ingest(case, tmp_path) == list(case.statuses)


def test_tests_readme_lists_the_corpus():
    text = (REPO / "tests/README.md").read_text()
    assert table() in text, "tests/README.md is stale: python tests/corpus/cases.py"


@pytest.mark.workflow
def test_whole_corpus_through_the_workflow(tmp_path):
    """All completing FASTA cases in one run: every record is in metadata.parquet."""
    from test_workflow import run

    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text((REPO / "config/config.yaml").read_text())
    inputs, expected = [], 0
    for case in CASES:
        if case.error or case.config or not case.files:
            continue
        d = tmp_path / "in" / case.name
        inputs += [f"in/{case.name}/{f}" for f in write_case(case, d)]
        expected += len(case.statuses)
    cfg = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    cfg["input"]["fasta"] = inputs
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml"], tmp_path, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    meta = pq.read_table(tmp_path / "results/atlas/metadata.parquet")
    assert meta.num_rows == expected
    assert not (tmp_path / "pwned").exists()
