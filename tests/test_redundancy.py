"""ingest.redundancy: cluster90 folds one representative per 90% cluster and resolves
every other member to it, never below the thresholds, the same whatever the threads or
input order, across releases of the store; ``none`` plans every unique sequence.

Real MMseqs2 (Debian's mmseqs2; skipped with the reason when absent), identity and
coverage recomputed with Biopython's PairwiseAligner, UniProtKB sequences from Debian's
mmseqs2-examples.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import chunk_settings, write_fasta
from foldatlas.chunking import plan_chunks, plan_release_chunks, read_plan
from foldatlas.fasta import sequence_checksum
from foldatlas.ingest import read_fasta_file
from foldatlas.layout import MEMBERS_FILE, PLAN_FILE, Layout, StoreLayout
from foldatlas.redundancy import MODES, Redundancy
from foldatlas.settings import IngestSettings
from foldatlas.store import publish_release, read_manifest
from test_atlas import make_chunk

pytestmark = pytest.mark.skipif(shutil.which("mmseqs") is None, reason="mmseqs not on PATH (apt-get install mmseqs2)")

UNIPROT = Path("/usr/share/doc/mmseqs2/example-data/DB.fasta.gz")
AA = "ACDEFGHIKLMNPQRSTVWY"
KEY = json.dumps({"fold": {"model": "tiny"}}, sort_keys=True)
CLUSTER90 = MODES["cluster90"]


def mutate(seq: str, n: int, rng: np.random.Generator) -> str:
    """``seq`` with ``n`` substitutions at distinct positions."""
    s = list(seq)
    for i in rng.choice(len(s), n, replace=False):
        s[i] = AA[(AA.index(s[i]) + 1 + int(rng.integers(19))) % 20]
    return "".join(s)


def families(seed: int = 3) -> dict[str, list[str]]:
    """Four families: a base sequence (60-90 aa), three close variants (about 95% identity,
    one shorter by two residues) and one far variant (70%); plus unrelated singletons."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {}
    for f in range(4):
        base = "".join(rng.choice(list(AA), 60 + 10 * f))
        out[f"fam{f}"] = [base, mutate(base, 3, rng), mutate(base, 2, rng), mutate(base, 1, rng)[:-2], mutate(base, len(base) * 3 // 10, rng)]
    out["single"] = ["".join(rng.choice(list(AA), 40 + 5 * k)) for k in range(3)]
    return out


def ingest(tmp: Path, files: dict[str, list[tuple[str, str]]], **settings: object) -> tuple[list[Path], list[Path]]:
    parts, counts = [], []
    for k, (name, recs) in enumerate(files.items()):
        path = write_fasta(tmp / name, recs)
        parts.append(tmp / f"{name}.part.parquet")
        counts.append(tmp / f"{name}.count.json")
        read_fasta_file(path, parts[-1], source=name, source_index=k, settings=IngestSettings.from_config(settings), workers=1, count_out=counts[-1])
    return parts, counts


def plan(tmp: Path, parts: list[Path], counts: list[Path], *, threads: int = 1, **kwargs) -> dict:
    out = tmp / f"plan{len(list(tmp.glob('plan*')))}"
    out.mkdir()
    kwargs.setdefault("redundancy", Redundancy(CLUSTER90, "mmseqs"))
    kwargs.setdefault("settings", chunk_settings(1e6, 100_000))
    plan_chunks(parts, records_out=out / "records.parquet", sequences_out=out / "sequences.parquet", chunks_dir=out / "chunks",
                memory_gb=1, threads=threads, counts=counts, **kwargs)  # fmt: skip
    seqs = pq.read_table(out / "sequences.parquet").to_pylist()
    chunked = {c for p in sorted((out / "chunks").glob("chunk_*.parquet")) for c in pq.read_table(p)["checksum"].to_pylist()}
    members = pq.read_table(out / "chunks" / MEMBERS_FILE).to_pylist() if (out / "chunks" / MEMBERS_FILE).exists() else None
    return {"dir": out, "sequences": {r["checksum"]: r for r in seqs}, "chunked": chunked, "members": members}


def aligned(member: str, rep: str) -> tuple[float, float, float]:
    """Identity (identical columns over alignment columns), and coverage of member and
    representative, of Biopython's best local alignment (BLOSUM62, gaps -11/-1)."""
    from Bio import Align
    from Bio.Align import substitution_matrices

    al = Align.PairwiseAligner(mode="local", substitution_matrix=substitution_matrices.load("BLOSUM62"), open_gap_score=-11, extend_gap_score=-1)
    a = al.align(member, rep)[0]
    (ms, me), (rs, re_) = (a.aligned[0][0][0], a.aligned[0][-1][1]), (a.aligned[1][0][0], a.aligned[1][-1][1])
    counts = a.counts()
    columns = counts.identities + counts.mismatches + counts.gaps
    return counts.identities / columns, (me - ms) / len(member), (re_ - rs) / len(rep)


def test_cluster90_folds_one_representative_per_family_and_resolves_the_rest(tmp_path):
    fam = families()
    recs = [(f"{name}_{k}", s) for name, seqs in fam.items() for k, s in enumerate(seqs)]
    parts, counts = ingest(tmp_path, {"a.fa": recs + [("again", fam["fam0"][1])]})
    p = plan(tmp_path, parts, counts)
    by_seq = {r["sequence"]: r for r in p["sequences"].values()}
    assert len(p["sequences"]) == len(recs), "every unique sequence keeps its row"
    for name, seqs in fam.items():
        if name == "single":
            assert all(by_seq[s]["representative"] is None for s in seqs)
            continue
        # the documented rule: the longest sequence, ties by smallest checksum
        rep = min(seqs[:4], key=lambda s: (-len(s), sequence_checksum(s.encode())))
        assert by_seq[rep]["representative"] is None
        for s in (s for s in seqs[:4] if s != rep):
            row = by_seq[s]
            assert row["representative"] == sequence_checksum(rep.encode()) and row["identity"] >= 0.9 and row["coverage"] >= 0.9
            assert (row["chunk"], row["release"]) == (by_seq[rep]["chunk"], by_seq[rep]["release"])
        assert by_seq[seqs[4]]["representative"] is None, "a 70% variant is folded itself"
    unresolved = {c for c, r in p["sequences"].items() if r["representative"] is None}
    assert p["chunked"] == unresolved and len(unresolved) == 4 * 2 + 3
    assert sorted(m["checksum"] for m in p["members"]) == sorted(set(p["sequences"]) - unresolved)
    assert by_seq[fam["fam0"][1]]["n_records"] == 2
    for m in p["members"]:
        assert m["identity"] >= 0.9 and m["coverage"] >= 0.9 and m["rep_coverage"] >= 0.9
        identity, cov, rep_cov = aligned(p["sequences"][m["checksum"]]["sequence"], p["sequences"][m["representative"]]["sequence"])
        assert identity >= 0.9 and cov >= 0.9 and rep_cov >= 0.9, (m, identity, cov, rep_cov)
        assert abs(identity - m["identity"]) < 0.02


def test_with_buckets_the_representatives_are_cut_per_bucket_and_members_follow_them(tmp_path):
    fam = families(seed=5)
    recs = [(f"{name}_{k}", s) for name, seqs in fam.items() for k, s in enumerate(seqs)]
    parts, counts = ingest(tmp_path, {"a.fa": recs})
    flat = plan(tmp_path, parts, counts)
    p = plan(tmp_path, parts, counts, settings=chunk_settings(1e6, 2, bucket_digits=1))
    rows = lambda q: {c: (r["representative"], r["identity"]) for c, r in q["sequences"].items()}  # noqa: E731
    assert rows(p) == rows(flat) and p["chunked"] == flat["chunked"], "buckets change the chunks, never who is folded"
    assert sum(r[0] is not None for r in rows(p).values()) == 4 * 3
    plans = read_plan(p["dir"] / "chunks" / PLAN_FILE)
    assert len({pl.bucket for pl in plans}) > 4
    for pl in plans:
        held = pq.read_table(p["dir"] / "chunks" / f"chunk_{pl.chunk:06d}.parquet")["checksum"].to_pylist()
        assert {c[:1] for c in held} == {pl.bucket} and len(held) <= 2
        assert all(p["sequences"][c]["chunk"] == pl.chunk for c in held)
    for c, r in p["sequences"].items():
        if r["representative"] is not None:
            assert r["chunk"] == p["sequences"][r["representative"]]["chunk"], "a member points at its representative's chunk"
    order = [(r["checksum"][:1], r["length"], r["checksum"]) for r in pq.read_table(p["dir"] / "sequences.parquet").to_pylist()]
    assert order == sorted(order), "sequences.parquet is sorted by bucket, length, checksum, members included"


def test_representatives_are_the_same_whatever_the_threads_or_input_order(tmp_path):
    fam = families(seed=11)
    recs = [(f"{name}_{k}", s) for name, seqs in fam.items() for k, s in enumerate(seqs)]
    rng = np.random.default_rng(1)
    shuffled = [recs[i] for i in rng.permutation(len(recs))]
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    a = plan(tmp_path / "one", *ingest(tmp_path / "one", {"a.fa": recs}), threads=1)
    b = plan(tmp_path / "two", *ingest(tmp_path / "two", {"b.fa": shuffled}), threads=2)
    rep = lambda p: {c: (r["representative"], r["identity"], r["coverage"]) for c, r in p["sequences"].items()}  # noqa: E731
    assert rep(a) == rep(b) and any(v[0] for v in rep(a).values())
    assert [pl.content for pl in read_plan(a["dir"] / "chunks" / PLAN_FILE)] == [pl.content for pl in read_plan(b["dir"] / "chunks" / PLAN_FILE)]


def test_none_plans_every_unique_sequence_and_writes_no_members(tmp_path):
    fam = families()
    recs = [(f"{name}_{k}", s) for name, seqs in fam.items() for k, s in enumerate(seqs)]
    p = plan(tmp_path, *ingest(tmp_path, {"a.fa": recs}), redundancy=None)
    assert p["chunked"] == set(p["sequences"]) and p["members"] is None
    assert all(r["representative"] is None and r["identity"] is None for r in p["sequences"].values())


def publish(tmp: Path, store: StoreLayout, run: Path, plans, name: str, fail: tuple[str, ...] = ()) -> dict:
    """Fold outputs for the planned chunks (sequences in ``fail`` ran out of memory), then
    the publication."""
    for pl in plans:
        seqs = pq.read_table(run / "chunks" / f"chunk_{pl.chunk:06d}.parquet")["sequence"].to_pylist()
        out = make_chunk(store.dir / "chunks", pl.chunk, seqs)
        rows = pq.read_table(out.predictions).to_pylist()
        for r in rows:
            if r["checksum"] in {sequence_checksum(f.encode()) for f in fail}:
                r |= {"status": "oom", "error": "out of memory", "member": None, "archive_offset": None, "archive_length": None, "plddt": None, "ptm": None}
        pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(out.predictions)), out.predictions)
    return publish_release(store, planned=run / "chunks/release.json", sequences=run / "sequences.parquet", inputs=run / "inputs.json", receipt=tmp / f"receipt-{name}.json")


def test_later_releases_join_the_store_representatives_and_keep_their_members(tmp_path):
    """Release 1 clusters A; release 2 over A and B: A's members keep their representative,
    B's close variant of an A family joins the store's representative (nothing planned for
    it), B's new family is clustered and only its representative is planned; the store
    publishes each release's members and the text of what it folded."""
    fam = families(seed=5)
    store = Layout(tmp_path / "results").store("e" * 16)
    a = [(f"{n}_{k}", s) for n in ("fam0", "fam1") for k, s in enumerate(fam[n][:4])]
    variant = mutate(fam["fam0"][0], 2, np.random.default_rng(9))
    b = [("b_variant", variant)] + [(f"fam2_{k}", s) for k, s in enumerate(fam["fam2"][:4])]
    runs = {}
    for name, files in (("r0001", {"r0001-a.fa": a}), ("r0002", {"r0002-a.fa": a, "r0002-b.fa": b})):
        run = tmp_path / name
        run.mkdir()
        parts, counts = ingest(tmp_path, files)
        plans = plan_release_chunks(parts, store=store, release=name, outputs_key=KEY, redundancy="cluster90", records_out=run / "records.parquet",
                                    sequences_out=run / "sequences.parquet", chunks_dir=run / "chunks", settings=chunk_settings(1e6, 100_000),
                                    memory_gb=1, counts=counts, inputs_out=run / "inputs.json")  # fmt: skip
        record = publish(tmp_path, store, run, plans, name)
        runs[name] = (plans, {r["sequence"]: r for r in pq.read_table(run / "sequences.parquet").to_pylist()}, record)
    plans1, seqs1, rec1 = runs["r0001"]
    plans2, seqs2, rec2 = runs["r0002"]
    assert rec1["counts"]["represented"] == 6 and rec1["counts"]["new_sequences"] == 2
    rep_of = lambda seqs: min(seqs[:4], key=lambda s: (-len(s), sequence_checksum(s.encode())))  # noqa: E731
    rep0 = sequence_checksum(rep_of(fam["fam0"]).encode())
    assert seqs2[variant]["representative"] == rep0 and seqs2[variant]["release"] == "r0001", "joins the store's representative"
    for s in fam["fam0"][:4]:
        if sequence_checksum(s.encode()) != rep0:
            assert (seqs2[s]["representative"], seqs2[s]["release"]) == (rep0, "r0001"), "a published member keeps its representative"
    planned2 = {c for pl in plans2 for c in pq.read_table(tmp_path / "r0002/chunks" / f"chunk_{pl.chunk:06d}.parquet")["checksum"].to_pylist()}
    assert planned2 == {sequence_checksum(rep_of(fam["fam2"]).encode())}, "only the new family's representative is folded"
    assert (rec2["counts"]["new_sequences"], rec2["counts"]["represented"]) == (1, 10)
    m = read_manifest(store)
    assert [r["name"] for r in m["releases"]] == ["r0001", "r0002"]
    members2 = {r["checksum"] for f in (store.release_members("r0002")).glob("*.parquet") for r in pq.read_table(f).to_pylist()}
    assert members2 == {sequence_checksum(s.encode()) for s in [variant, *fam["fam2"][:4]]} - planned2, "a release publishes the members it resolved"
    texts = {r["checksum"] for f in store.release_sequences("r0001").glob("*.parquet") for r in pq.read_table(f).to_pylist()}
    assert texts == {sequence_checksum(rep_of(fam[n]).encode()) for n in ("fam0", "fam1")}


def release(tmp: Path, store: StoreLayout, name: str, recs: list[tuple[str, str]], *, redundancy: str = "cluster90", fail: tuple[str, ...] = (), **ingest_settings: object) -> tuple[list, dict, dict]:
    """One release over ``recs``: plan against the store, fold (hand-made outputs), publish.
    Returns the plans, sequences.parquet by sequence, and the release record."""
    run = tmp / name
    run.mkdir()
    parts, counts = ingest(run, {"in.fa": recs}, **ingest_settings)
    plans = plan_release_chunks(parts, store=store, release=name, outputs_key=KEY, redundancy=redundancy, records_out=run / "records.parquet",
                                sequences_out=run / "sequences.parquet", chunks_dir=run / "chunks", settings=chunk_settings(1e6, 100_000),
                                memory_gb=1, counts=counts, inputs_out=run / "inputs.json")  # fmt: skip
    record = publish(tmp, store, run, plans, name, fail)
    return plans, {r["sequence"]: r for r in pq.read_table(run / "sequences.parquet").to_pylist()}, record


def test_members_of_a_failed_representative_are_resolved_again_and_a_release_without_hits_plans(tmp_path):
    """A representative that ran out of memory represents nobody in later releases (its
    members are clustered again, one of them folded); a release whose new sequences hit
    nothing in the store plans them (an empty search result)."""
    fam = families(seed=21)
    store = Layout(tmp_path / "results").store("d" * 16)
    recs = [(f"m{k}", s) for k, s in enumerate(fam["fam0"][:4])]
    rep = min(fam["fam0"][:4], key=lambda s: (-len(s), sequence_checksum(s.encode())))
    _, seqs1, rec1 = release(tmp_path, store, "r0001", recs, fail=(rep,))
    assert rec1["counts"]["represented"] == 3
    assert not list(store.release_sequences("r0001").glob("*.parquet")), "a failed fold represents nobody"
    single = [("new", fam["single"][0])]
    plans2, seqs2, rec2 = release(tmp_path, store, "r0002", recs + single)
    members2 = {s for s, r in seqs2.items() if r["representative"]}
    assert all(seqs2[s]["representative"] != sequence_checksum(rep.encode()) for s in members2)
    folded2 = {s for s, r in seqs2.items() if r["release"] == "r0002" and not r["representative"]}
    assert fam["single"][0] in folded2 and len(folded2) == 2 and len(members2) == 2, (folded2, members2)
    _, seqs3, rec3 = release(tmp_path, store, "r0003", [("other", fam["single"][1])])
    assert seqs3[fam["single"][1]]["release"] == "r0003" and rec3["counts"]["new_sequences"] == 1


def test_a_mode_switch_keeps_own_structures_and_a_release_of_members_only_is_published(tmp_path):
    """cluster90, then none (the members are folded), then cluster90 again: a sequence
    folded itself is never represented again. A release whose only new sequences are
    members (no chunk) over the inputs of a published release is still published."""
    fam = families(seed=4)
    store = Layout(tmp_path / "results").store("c" * 16)
    recs = [(f"m{k}", s) for k, s in enumerate(fam["fam1"][:4])]
    _, seqs1, _ = release(tmp_path, store, "r0001", recs)
    assert sum(r["representative"] is not None for r in seqs1.values()) == 3
    plans2, seqs2, _ = release(tmp_path, store, "r0002", recs, redundancy="none")
    assert sum(p.n_sequences for p in plans2) == 3 and all(r["representative"] is None for r in seqs2.values())
    plans3, seqs3, rec3 = release(tmp_path, store, "r0003", recs)
    assert plans3 == [] and all(r["representative"] is None for r in seqs3.values()), "folded sequences keep their own structure"
    assert rec3["name"] == "r0002", "nothing new: the published release with these inputs"

    rep = max(fam["fam2"][:4], key=len)
    longer = rep + "KW"
    release(tmp_path, store, "r0004", [("rep", rep), ("longer", longer)], max_length=len(rep))
    _, seqs5, rec5 = release(tmp_path, store, "r0005", [("rep", rep), ("longer", longer)], max_length=1000)
    assert seqs5[longer]["representative"] == sequence_checksum(rep.encode())
    assert rec5["name"] == "r0005" and rec5["counts"]["represented"] == 1 and "members" in rec5
    assert [r["name"] for r in read_manifest(store)["releases"]][-1] == "r0005"


@pytest.mark.skipif(not UNIPROT.exists(), reason=f"{UNIPROT} absent (apt-get install mmseqs2-examples)")
def test_cluster90_on_20000_uniprot_sequences(tmp_path):
    """The 20,000 UniProtKB sequences of mmseqs2-examples: every member at or above 90%
    identity and coverage (a sample recomputed with Biopython), accounting adds up."""
    path = tmp_path / "DB.fasta.gz"
    path.write_bytes(UNIPROT.read_bytes())
    part, count = tmp_path / "db.parquet", tmp_path / "db.count.json"
    read_fasta_file(path, part, source="DB.fasta.gz", source_index=0, settings=IngestSettings.from_config({"max_length": 100000, "min_length": 1}), workers=2, count_out=count)
    p = plan(tmp_path, [part], [count], threads=2)
    seqs, members = p["sequences"], p["members"]
    records = pq.read_table(p["dir"] / "records.parquet", columns=["status"])["status"].to_pylist()
    reps = {c for c, r in seqs.items() if r["representative"] is None}
    assert len(reps) + len(members) == len(seqs) and p["chunked"] == reps
    assert sum(seqs[c]["n_records"] for c in reps) + sum(seqs[m["checksum"]]["n_records"] for m in members) == records.count("ok") + records.count("duplicate")
    assert all(m["representative"] in reps and m["identity"] >= 0.9 and m["coverage"] >= 0.9 and m["rep_coverage"] >= 0.9 for m in members)
    # measured on mmseqs 14-7e284: 18,801 unique sequences, 3,689 members (19.6% of folds saved)
    assert 0.1 < len(members) / len(seqs) < 0.4
    for m in sorted(members, key=lambda m: m["checksum"])[:25]:
        identity, cov, rep_cov = aligned(seqs[m["checksum"]]["sequence"], seqs[m["representative"]]["sequence"])
        assert identity >= 0.9 and cov >= 0.9 and rep_cov >= 0.9, (m, identity, cov, rep_cov)
    print(f"\n{len(seqs)} unique sequences, {len(reps)} representatives, {len(members)} members ({len(members) / len(seqs):.1%} of folds saved)")


@pytest.mark.workflow
def test_cluster90_workflow_folds_representatives_and_resolves_every_member(tmp_path):
    """The whole workflow with the tiny model: only representatives are folded; every
    member record is in metadata.parquet as represented, with its representative's
    structure and confidences; accounting and the report count members apart. The atlas
    is assembled in 16 checksum buckets, so most members' representatives are in another
    bucket's job. A second release adding a close variant of a folded representative
    folds nothing; its atlas is one bucket again, with nothing of the 16 left."""
    from test_store import snakemake
    from test_workflow import prepare

    wd = prepare(tmp_path, {"ingest": {"max_length": 80, "redundancy": "cluster90"}, "fold": {"max_batch_size": 1}})
    config = yaml.safe_load((wd / "run.yaml").read_text())
    fam = families(seed=7)
    short = {n: [s[:56] for s in seqs] for n, seqs in fam.items()}  # short chains: the tiny model is slow on long ones
    recs = [(f"{n}_{k}", s) for n, seqs in short.items() for k, s in enumerate(seqs)] + [("dup", short["fam1"][2])]
    write_fasta(wd / "a.fa", recs)
    snakemake(wd, {**config, "input": {"fasta": ["a.fa"]}, "atlas": {**config.get("atlas", {}), "bucket_digits": 1}})
    results = wd / "results"
    assert sorted(p.name for p in (results / "atlas/metadata.parquet").iterdir()) == [f"{d}.parquet" for d in "0123456789abcdef"]
    seqs = {r["checksum"]: r for r in pq.read_table(results / "ingest/sequences.parquet").to_pylist()}
    reps = {c for c, r in seqs.items() if r["representative"] is None}
    folded = {c for p in results.glob("store/*/chunks/chunk_*/predictions.parquet") for c in pq.read_table(p)["checksum"].to_pylist()}
    assert folded == reps and len(reps) < len(seqs), "only representatives are folded"
    meta = pq.read_table(results / "atlas/metadata.parquet").to_pylist()
    by_checksum = {m["checksum"]: m for m in meta if not m["is_duplicate"]}
    represented = [m for m in meta if m["status"] == "represented"]
    assert len(represented) == sum(seqs[c]["n_records"] for c in set(seqs) - reps) and any(m["is_duplicate"] for m in represented)
    for m in represented:
        rep = by_checksum[m["representative"]]
        assert m["representative"] == seqs[m["checksum"]]["representative"] and m["identity"] >= 0.9 and m["coverage"] >= 0.9
        assert (m["rep_status"], m["rep_plddt"], m["rep_ptm"], m["rep_high_confidence"]) == (rep["status"], rep["plddt"], rep["ptm"], rep["high_confidence"])
        assert (m["rep_archive"], m["rep_member"]) == (rep["archive"], rep["member"])
        assert rep["archive"] is None or rep["archive"].startswith(f"structures/{m['representative'][0]}/")
        assert m["plddt"] is None and m["high_confidence"] is False and m["chunk"] is None
    summary = json.loads((results / "atlas/summary.json").read_text())
    c = summary["counts"]
    assert (c["represented"], c["represented_records"], c["representatives"]) == (len(seqs) - len(reps), len(represented), len({m["representative"] for m in represented}))
    assert summary["metadata_status"]["represented"] + summary["metadata_status"].get("folded", 0) + summary["metadata_status"].get("error", 0) == c["records_in"]
    assert sum(m["checksum"][0] != m["representative"][0] for m in represented) >= len(represented) // 2  # across buckets
    assert json.loads((results / "atlas/accounting.json").read_text())["checks"]["represented_records"] == len(represented)
    assert summary["releases"][0]["represented"] == c["represented"] and summary["releases"][0]["est_gpu_hours_saved_by_redundancy"] > 0
    report = (results / "report/atlas_report.html").read_text()
    assert f"{c['represented']:,} of {c['unique_sequences']:,} unique sequences" in report.split('id="redundancy"')[1]

    rep0 = min(short["fam0"][:4], key=lambda s: (-len(s), sequence_checksum(s.encode())))
    variant = mutate(rep0, 2, np.random.default_rng(2))
    write_fasta(wd / "b.fa", [("variant", variant)])
    snakemake(wd, {**config, "input": {"fasta": ["a.fa", "b.fa"]}})
    assert read_plan(results / "chunks/plan.tsv") == [], "the variant joins a folded representative: no chunk to fold"
    assert {c for p in results.glob("store/*/chunks/chunk_*/predictions.parquet") for c in pq.read_table(p)["checksum"].to_pylist()} == folded
    summary = json.loads((results / "atlas/summary.json").read_text())
    assert summary["release"] == "r0002" and summary["releases"][1]["new_sequences"] == 0 and summary["releases"][1]["represented"] == c["represented"] + 1
    assert [p.name for p in (results / "atlas/metadata.parquet").iterdir()] == ["all.parquet"]
    assert sorted(p.name for p in (results / "atlas/structures").iterdir()) == ["all", "index.parquet"]
    row = next(m for m in pq.read_table(results / "atlas/metadata.parquet").to_pylist() if m["id"] == "variant")
    assert row["status"] == "represented" and row["representative"] == sequence_checksum(rep0.encode()) and row["atlas_version"] == "r0001"
