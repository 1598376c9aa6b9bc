"""Every case of the bad-input corpus (tests/corpus/cases.py) has its documented outcome."""

from __future__ import annotations

import json
import os
import re

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO
from corpus.cases import CASES, SEQ, Case, table, write_case
from foldatlas.chunking import plan_chunks
from foldatlas.config import validate_config
from foldatlas.errors import FoldatlasError
from foldatlas.fasta import expand_inputs
from foldatlas.ingest import read_fasta_file
from foldatlas.settings import ChunkSettings, IngestSettings

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def ingest(case: Case, tmp) -> list[str]:
    """Start-up checks and ingest, as the workflow runs them (with the independent
    count of each file); returns record statuses."""
    cfg = validate_config(yaml.safe_load((REPO / "config/config.yaml").read_text()) | case.config, SCHEMA)
    inputs = write_case(case, tmp)
    files = expand_inputs(inputs, base=tmp)
    parts, counts = [], []
    ingest = IngestSettings.from_config(cfg["ingest"])
    for k, f in enumerate(files):
        parts.append(tmp / f"part{k}.parquet")
        counts.append(tmp / f"part{k}.count.json")
        read_fasta_file(tmp / f, parts[-1], source=f, source_index=k, settings=ingest, workers=1, count_out=counts[-1])
    plan_chunks(parts, records_out=tmp / "records.parquet", sequences_out=tmp / "sequences.parquet", chunks_dir=tmp / "chunks",
                settings=ChunkSettings.from_config(cfg["chunks"]), memory_gb=0.5, counts=counts, inputs_out=tmp / "inputs.json")  # fmt: skip
    return pq.read_table(tmp / "records.parquet", columns=["status"])["status"].to_pylist()


def test_corpus_has_at_least_80_cases():
    assert len(CASES) >= 80 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_outcome(case, tmp_path):
    if case.error:
        with pytest.raises(FoldatlasError) as info:
            ingest(case, tmp_path)
        assert re.search(case.error, str(info.value)), str(info.value)[:3000]
        assert "Traceback" not in str(info.value)
        assert len(str(info.value)) < 3000, "an error message must stay short whatever the input"
        assert not (tmp_path / "records.parquet").exists()
        assert not [p for p in tmp_path.rglob(".*tmp-*")], "a half-written file was left behind"
    else:
        assert ingest(case, tmp_path) == list(case.statuses)


def test_tests_readme_lists_the_corpus():
    text = (REPO / "tests/README.md").read_text()
    assert table() in text, "tests/README.md is stale: python tests/corpus/cases.py"


@pytest.mark.workflow
def test_whole_corpus_through_the_workflow(tmp_path):
    """All completing FASTA cases in one run (file names with [, ? and * included): every
    record is in metadata.parquet. Then a silent loss is simulated on the finished run."""
    from test_workflow import run

    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text((REPO / "config/config.yaml").read_text())
    inputs, sources, expected = [], [], 0
    for case in CASES:
        if case.error or case.config or not case.files:
            continue
        d = tmp_path / "in" / case.name
        for f in write_case(case, d):
            inputs.append(f"in/{case.name}/{f}")
            # an entry naming no file is a glob: inputs.json lists the files it matched
            found = [f] if os.path.lexists(d / f) else sorted(p.name for p in d.glob(f))
            sources += [f"in/{case.name}/{m}" for m in found]
        expected += len(case.statuses)
    cfg = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    cfg["input"]["fasta"] = inputs
    # the 1280-residue edge case would take minutes to fold on the CPU: here it is too_long
    # (still one row of metadata.parquet); test_corpus_case reads it as ok at the default
    cfg["ingest"] = {"max_length": 300}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml"], tmp_path, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    meta = pq.read_table(tmp_path / "results/atlas/metadata.parquet")
    assert meta.num_rows == expected
    assert not (tmp_path / "pwned").exists()
    files = json.loads((tmp_path / "results/ingest/inputs.json").read_text())["files"]
    assert [f["source"] for f in files] == sources and sum(f["records"] for f in files) == expected
    assert json.loads((tmp_path / "results/atlas/accounting.json").read_text())["checks"]["input_files"] == len(sources)
    _silent_loss_is_caught(tmp_path / "results", "in/only_headers/a.fa")


def _silent_loss_is_caught(results, source):
    """Drop one file's empty records from records.parquet and metadata.parquet, and make
    summary.json agree: every check that compares the outputs with each other still
    holds (as when ingest itself loses records); only the independent count sees it."""
    import pyarrow.compute as pc

    from foldatlas.accounting import check_accounting
    from foldatlas.errors import AccountingError
    from foldatlas.layout import Layout

    layout = Layout(results)
    lost = 0
    for path in (layout.records, layout.atlas.part(layout.atlas.metadata, "all")):  # the atlas is one bucket here
        table = pq.read_table(path)
        drop = pc.and_(pc.equal(table["source"], source), pc.equal(table["status"], "empty"))
        lost = int(pc.sum(drop).as_py())
        pq.write_table(table.filter(pc.invert(drop)), path)
    summary = json.loads(layout.atlas.summary.read_text())
    summary["counts"]["records_in"] -= lost
    summary["counts"]["empty"] -= lost
    layout.atlas.summary.write_text(json.dumps(summary))
    args = dict(records=layout.records, sequences=layout.sequences, outputs=layout.atlas, report=results / "again.json")
    assert lost == 3 and check_accounting(**args)["ok"], "without the independent count, the loss passes"
    with pytest.raises(AccountingError) as info:
        check_accounting(**args, inputs=layout.inputs)
    assert info.value.problems == [
        f"{source}: the input holds 3 records (independent count of its header lines), records.parquet has 0",
        f"{source}: the input holds 3 records (independent count of its header lines), metadata.parquet has 0",
    ]


@pytest.mark.workflow
def test_truncated_zstd_input_stops_the_workflow_at_ingest(tmp_path):
    """Before: 620 input records in a .zst cut short gave 256 metadata rows, and the
    accounting check said ok."""
    from corpus.cases import fa, zst
    from test_workflow import run

    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text((REPO / "config/config.yaml").read_text())
    data = zst(fa(*[(f"r{i}", (SEQ * 3)[i % 50 : i % 50 + 60]) for i in range(620)]))
    cut = len(data) * 4 // 10
    (tmp_path / "cut.fa.zst").write_bytes(data[:cut])
    cfg = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    cfg["input"]["fasta"] = ["cut.fa.zst"]
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml"], tmp_path, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Error in rule read_fasta" in out
    message = f"cut.fa.zst: compressed stream is truncated: expected the end of the zstd frame that starts at byte 0, found the end of the file at byte {cut}"
    assert message in out
    assert message in (tmp_path / "results/logs/read_fasta/0.log").read_text()
    assert not (tmp_path / "results/ingest/records.parquet").exists()
