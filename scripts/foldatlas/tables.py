"""Arrow schemas of every Parquet file foldatlas writes, in one place, and the writer.

Writers cast to these schemas and tests compare against them; the README documents
each one (generated from the descriptions here). Confidence values are on the 0-1
scale throughout.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_path
from .layout import ALL, HIGHCONF
from .status import FOLD_OUTCOMES, INGEST_STATUSES, PREDICTION_STATUSES, REJECTED, listed

__all__ = [
    "OUTPUTS_KEY",
    "RECORDS_SCHEMA",
    "PART_SCHEMA",
    "SEQUENCES_SCHEMA",
    "MEMBERS_SCHEMA",
    "STORE_SEQUENCES_SCHEMA",
    "CHUNK_SCHEMA",
    "KEYS_SCHEMA",
    "STORE_INDEX_SCHEMA",
    "RELEASE_CHUNKS_SCHEMA",
    "PREDICTIONS_SCHEMA",
    "SEGMENT_STRUCTURES_SCHEMA",
    "embeddings_schema",
    "METADATA_SCHEMA",
    "PLDDT_SCHEMA",
    "INDEX_SCHEMA",
    "CLUSTERS_SCHEMA",
    "HITS_SCHEMA",
    "SEQ_CLUSTERS_SCHEMA",
    "REPRESENTATIVES_SCHEMA",
    "SEARCH_COLUMNS",
    "write_table",
    "write_batches",
    "compress_pae",
    "decompress_pae",
    "schemas_markdown",
]


def _schema(*fields: tuple[str, pa.DataType, bool, str]) -> pa.Schema:
    return pa.schema(
        [pa.field(name, dtype, nullable=nullable, metadata={"description": doc}) for name, dtype, nullable, doc in fields]
    )


_RECORD_FIELDS = (
    ("source", pa.string(), False, "input file as named in input.fasta (after glob expansion)"),
    ("source_index", pa.int32(), False, "0-based position of the file in the expanded input list"),
    ("record_index", pa.int64(), False, "0-based position of the record in its file"),
    ("line", pa.int64(), False, "1-based line of the record's header in the decompressed file"),
    ("id", pa.string(), False, "first whitespace-delimited token of the header (may repeat)"),
    ("header", pa.string(), False, "whole header line without '>' (non-UTF-8 bytes as U+FFFD)"),
    ("checksum", pa.string(), True, "MD5 (hex) of the normalised sequence; null when empty or invalid"),
    ("length", pa.int32(), False, "residues after normalisation"),
    ("n_nonstandard", pa.int32(), False, "count of X, B, Z, U, O residues"),
    ("status", pa.string(), False, listed(INGEST_STATUSES)),
    ("reason", pa.string(), False, "human-readable detail of the status; empty for ok"),
)

#: ``results/ingest/records.parquet``: one row per input record, in input order (with
#: ``ingest.bucket_digits``: by checksum bucket, then in input order).
RECORDS_SCHEMA = _schema(*_RECORD_FIELDS)

#: Per-file intermediate of ``read_fasta``: records plus their normalised sequences.
PART_SCHEMA = _schema(
    *_RECORD_FIELDS,
    ("sequence", pa.string(), True, "normalised sequence; null when empty or invalid"),
)

#: ``results/ingest/sequences.parquet``: one row per unique sequence, sorted by checksum
#: bucket (``chunks.bucket_digits``), then length, then checksum.
SEQUENCES_SCHEMA = _schema(
    ("checksum", pa.string(), False, "MD5 (hex) of the sequence; the key of a unique sequence"),
    ("sequence", pa.string(), False, "normalised amino-acid sequence"),
    ("length", pa.int32(), False, "residues"),
    ("n_nonstandard", pa.int32(), False, "count of X, B, Z, U, O residues"),
    ("n_records", pa.int64(), False, "input records with this sequence (ok + duplicate)"),
    ("est_seconds", pa.float64(), False, "estimated GPU seconds to fold (chunks.cost model)"),
    ("chunk", pa.int32(), False, "chunk the sequence is folded in (in this release's plan, or in the store's earlier release)"),
    ("release", pa.string(), False, "release of the store whose chunk folds the sequence: this run's, or the earlier one that already folded it (for a member: its representative's)"),
    ("representative", pa.string(), True, "ingest.redundancy: checksum of the folded representative of this member's cluster (chunk and release are the representative's); null for a sequence folded itself"),
    ("identity", pa.float64(), True, "fraction of identical residues in the member's alignment to its representative (MMseqs2 fident); null unless a member"),
    ("coverage", pa.float64(), True, "fraction of the member covered by that alignment; null unless a member"),
)

#: ``<store>/<fingerprint>/releases/<name>/members/HH.parquet`` and the plan's
#: ``chunks/members.parquet``: sequences a release resolved to a representative instead of folding them.
MEMBERS_SCHEMA = _schema(
    ("checksum", pa.string(), False, "MD5 (hex) of the member sequence"),
    ("representative", pa.string(), False, "checksum of its cluster's representative (folded by this release or an earlier one)"),
    ("identity", pa.float64(), False, "fraction of identical residues over the alignment columns (MMseqs2 fident)"),
    ("coverage", pa.float64(), False, "fraction of the member covered by the alignment"),
    ("rep_coverage", pa.float64(), False, "fraction of the representative covered by the alignment"),
    ("length", pa.int32(), False, "residues of the member"),
    ("release", pa.string(), False, "release that resolved the member"),
)

#: ``<store>/<fingerprint>/releases/<name>/sequences/HH.parquet``: the text of every sequence a
#: release folded (what later releases' members are aligned to).
STORE_SEQUENCES_SCHEMA = _schema(
    ("checksum", pa.string(), False, "MD5 (hex) of the sequence"),
    ("sequence", pa.string(), False, "normalised amino-acid sequence"),
)

#: ``<store>/<fingerprint>/releases/<name>/keys/HH.parquet``: the sequences a release folded.
KEYS_SCHEMA = _schema(
    ("checksum", pa.string(), False, "MD5 (hex) of the sequence"),
    ("chunk", pa.int32(), False, "store chunk whose outputs hold its prediction"),
    ("length", pa.int32(), False, "residues"),
    ("release", pa.string(), False, "name of the release"),
)

#: ``<store>/<fingerprint>/releases/<name>/chunks.parquet``: the chunks a release folded and
#: their files' checksums (kept out of release.json: 10^5-10^6 chunks a release).
RELEASE_CHUNKS_SCHEMA = _schema(
    ("chunk", pa.int32(), False, "store chunk the release folded"),
    ("predictions_sha256", pa.string(), False, "SHA-256 (hex) of its predictions.parquet"),
    ("predictions_bytes", pa.int64(), False, "size of its predictions.parquet"),
    ("embeddings_sha256", pa.string(), False, "SHA-256 (hex) of its embeddings.parquet"),
    ("embeddings_bytes", pa.int64(), False, "size of its embeddings.parquet"),
    ("structures_sha256", pa.string(), False, "SHA-256 (hex) of its structures.tar"),
    ("structures_bytes", pa.int64(), False, "size of its structures.tar"),
)

#: ``<store>/<fingerprint>/releases/<name>/structures/HH.parquet``: where each structure the
#: release folded lives in the store's chunk archives (written once, never rebuilt).
STORE_INDEX_SCHEMA = _schema(
    ("checksum", pa.string(), False, "MD5 (hex) of the sequence"),
    ("chunk", pa.int32(), False, "store chunk that folded it"),
    ("archive", pa.string(), False, "the chunk's archive, relative to the fingerprint's folder: chunks/chunk_NNNNNN/structures.tar (an uncompressed .tar)"),
    ("member", pa.string(), False, "PDB member name, <checksum>.pdb.gz"),
    ("data_offset", pa.int64(), False, "byte offset of the member's data (a complete gzip file) in the archive; its 512-byte tar header is just before"),
    ("data_length", pa.int64(), False, "bytes of that gzip file"),
    ("plddt", pa.float32(), False, "mean pLDDT, 0-1"),
    ("ptm", pa.float32(), False, "pTM, 0-1"),
)

#: ``results/chunks/chunk_NNNNN.parquet``: the sequences of one chunk (one checksum bucket), sorted by length.
CHUNK_SCHEMA = _schema(
    ("checksum", pa.string(), False, "MD5 (hex) of the sequence"),
    ("sequence", pa.string(), False, "normalised amino-acid sequence"),
    ("length", pa.int32(), False, "residues"),
    ("est_seconds", pa.float64(), False, "estimated GPU seconds to fold"),
)


def write_table(table: pa.Table, path: str | os.PathLike[str], schema: pa.Schema, **kwargs: object) -> None:
    """Cast ``table`` to ``schema`` and write it atomically as Parquet (zstd)."""
    write_batches(table.to_batches(), path, schema, **kwargs)


def write_batches(
    batches: Iterable[pa.RecordBatch],
    path: str | os.PathLike[str],
    schema: pa.Schema,
    *,
    compression: str = "zstd",
    row_group_size: int = 1 << 20,
) -> int:
    """Stream record batches into one Parquet file atomically; return the row count.

    Each batch is cast to ``schema`` (column order and types), so a writer can never
    drift from the documented contract.
    """
    n = 0
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema, compression=compression) as writer:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                table = pa.Table.from_batches([batch]).select(schema.names).cast(schema)
                writer.write_table(table, row_group_size=row_group_size)
                n += batch.num_rows
    return n


#: ``<store>/<fingerprint>/chunks/chunk_NNNNNN/predictions.parquet``: one row per unique sequence of the chunk.
#: Key-value metadata of a fold job's ``predictions.parquet``: every setting that can
#: change its outputs (:func:`foldatlas.settings.fold_outputs_key`), as the job ran.
OUTPUTS_KEY = b"foldatlas_outputs_key"

PREDICTIONS_SCHEMA = _schema(
    ("checksum", pa.string(), False, "MD5 (hex) of the sequence"),
    ("length", pa.int32(), False, "residues"),
    ("status", pa.string(), False, f"{listed(PREDICTION_STATUSES)} (oom: did not fit in memory at chunk size 32)"),
    ("error", pa.string(), False, "error message when status is not ok; empty otherwise"),
    ("plddt", pa.float32(), True, "mean pLDDT over existing atoms, 0-1 (ESM Atlas 'plddt')"),
    ("plddt_ca", pa.float32(), True, "mean C-alpha pLDDT, 0-1"),
    ("ptm", pa.float32(), True, "predicted TM-score computed for this sequence alone, 0-1"),
    ("num_conf", pa.int32(), False, "residues with C-alpha pLDDT > 0.7"),
    ("max_pae", pa.float32(), True, "largest predicted aligned error, Angstrom"),
    ("mean_pae", pa.float32(), True, "mean predicted aligned error, Angstrom"),
    ("artefact", pa.bool_(), False, "pTM >= 0.99 with mean pLDDT < fold.artefact_max_plddt"),
    ("residue_plddt", pa.list_(pa.float32()), True, "C-alpha pLDDT of every residue, 0-1"),
    ("pae", pa.binary(), True, "zstd-compressed float16 L x L PAE matrix (row-major, Angstrom); null unless fold.save_pae"),
    ("batch_size", pa.int32(), False, "sequences in the forward pass that folded it"),
    ("seconds", pa.float32(), False, "wall seconds of that forward pass divided by its batch size"),
    ("chunk_size", pa.int32(), True, "trunk axial-attention chunk size used (null: unchunked)"),
    ("num_recycles", pa.int16(), False, "recycles (trunk passes minus one)"),
    ("device", pa.string(), False, "device that folded it (cpu, cuda:0 + GPU name)"),
    ("lm_precision", pa.string(), False, "precision of the ESM-2 language model: fp32, fp16 or bf16"),
    ("tf32", pa.bool_(), False, "the trunk's fp32 matmuls ran in TF32 (GPUs)"),
    ("model_id", pa.string(), False, "weights used; tiny-random-* marks meaningless test structures"),
    ("model_version", pa.string(), False, "revision of the weights when known"),
    ("weights_checksum", pa.string(), False, "SHA-256 of the weights' content (config.json and weight files; see foldatlas.model.weights_checksum)"),
    ("member", pa.string(), True, "structure's member name in the chunk archive; null when not folded"),
    ("archive_offset", pa.int64(), True, "byte offset of the structure's tar entries in the chunk archive (structures.tar); null when not folded"),
    ("archive_length", pa.int64(), True, "bytes of those entries (per format: tar header, gzip file, padding); null when not folded"),
)


def embeddings_schema(dim: int, dtype: str, *, per_residue: bool) -> pa.Schema:
    """Schema of ``embeddings.parquet``: one row per (sequence, layer).

    ``embedding`` is the mean over residues of the ESM-2 hidden state (BOS/EOS excluded)
    as a fixed-size list of ``dim`` floats; ``residue_embeddings`` (optional) the
    per-residue states. DuckDB reads a Parquet fixed-size list as a list (``FLOAT[]``):
    ``list_cosine_similarity(a.embedding, b.embedding)`` works on it as it is, and
    ``array_cosine_similarity`` after a cast to ``FLOAT[D]`` (see the README).
    """
    value = pa.float16() if dtype == "float16" else pa.float32()
    fields = [
        ("checksum", pa.string(), False, "MD5 (hex) of the sequence"),
        ("layer", pa.int16(), False, "ESM-2 layer (0 = embedding layer; last = after final layer norm)"),
        ("embedding", pa.list_(value, dim), False, f"mean-pooled hidden state, {dim} values (DuckDB: FLOAT[], use list_cosine_similarity)"),
    ]
    if per_residue:
        fields.append(("residue_embeddings", pa.list_(pa.list_(value, dim)), False, "hidden state of every residue"))
    return _schema(*fields)


#: ``results/atlas/metadata.parquet``: one row per input record, in input order.
METADATA_SCHEMA = _schema(
    ("id", pa.string(), False, "first token of the header (as in records.parquet)"),
    ("source", pa.string(), False, "input file"),
    ("source_index", pa.int32(), False, "position of the file in the expanded input list"),
    ("source_id", pa.string(), False, "stable id of the input file: <base name>@<first 12 hex digits of the SHA-256 of its text>"),
    ("record_index", pa.int64(), False, "0-based position of the record in its file"),
    ("header", pa.string(), False, "whole header line"),
    ("checksum", pa.string(), True, "MD5 (hex) of the normalised sequence; null when empty or invalid"),
    ("crc64", pa.string(), True, "UniProt CRC64 of the normalised sequence, 16 upper-case hex digits (the ESM Atlas's sequenceChecksum); null for records rejected at ingest"),
    ("length", pa.int32(), False, "residues after normalisation"),
    ("n_nonstandard", pa.int32(), False, "count of X, B, Z, U, O residues"),
    ("status", pa.string(), False, f"{listed(FOLD_OUTCOMES)} (fold outcome), represented (ingest.redundancy: not folded, see rep_*) or {listed(REJECTED)} (ingest)"),
    ("is_duplicate", pa.bool_(), False, "an earlier record has the same sequence (it shares that record's prediction)"),
    ("reason", pa.string(), False, "detail of the status (ingest reason, duplicate origin or fold error)"),
    ("plddt", pa.float32(), True, "mean pLDDT over existing atoms, 0-1"),
    ("plddt_ca", pa.float32(), True, "mean C-alpha pLDDT, 0-1"),
    ("ptm", pa.float32(), True, "predicted TM-score, 0-1"),
    ("num_conf", pa.int32(), True, "residues with pLDDT > 0.7"),
    ("max_pae", pa.float32(), True, "largest predicted aligned error, Angstrom"),
    ("mean_pae", pa.float32(), True, "mean predicted aligned error, Angstrom"),
    ("artefact", pa.bool_(), True, "pTM >= 0.99 with low pLDDT: a likely artefact"),
    ("high_confidence", pa.bool_(), False, "passed the filter (filter.min_plddt, filter.min_ptm, artefacts)"),
    ("bin", pa.string(), True, "ESM Atlas bin of pTM and pLDDT (bands 0_.40, .40_.50 ... .80_.90, .90_1), e.g. tm_.60_.70_plddt_.80_.90"),
    ("chunk", pa.int32(), True, "store chunk the sequence was folded in"),
    ("atlas_version", pa.string(), True, "store release that first folded the sequence (the ESM Atlas's atlas_version; status represented: its representative's); null for records rejected at ingest"),
    ("sequence_dbs", pa.list_(pa.string()), True, "source_id of every input file holding the sequence, sorted (the ESM Atlas's sequence_dbs); null for records rejected at ingest"),
    ("model_id", pa.string(), True, "weights that folded it"),
    ("model_version", pa.string(), True, "revision of the weights"),
    ("archive", pa.string(), True, "structure shard, relative to results/atlas/ (high-confidence, or all with atlas.all_structures); with atlas.copy_structures: false the fold job's archive in the store (../store/<fingerprint>/chunks/chunk_NNNNNN/structures.tar with the default store.path)"),
    ("member", pa.string(), True, "PDB member of the structure in the shard (<checksum>.pdb.gz); locate it with index.parquet"),
    ("representative", pa.string(), True, "status represented: checksum of the cluster's folded representative (ingest.redundancy); null otherwise"),
    ("identity", pa.float64(), True, "status represented: fraction of identical residues in the alignment to the representative"),
    ("coverage", pa.float64(), True, "status represented: fraction of this sequence covered by that alignment"),
    ("rep_status", pa.string(), True, f"status represented: the representative's fold outcome ({listed(FOLD_OUTCOMES)})"),
    ("rep_plddt", pa.float32(), True, "status represented: the representative's mean pLDDT, 0-1"),
    ("rep_ptm", pa.float32(), True, "status represented: the representative's pTM, 0-1"),
    ("rep_high_confidence", pa.bool_(), True, "status represented: the representative passed the filter (this record itself never counts as high-confidence)"),
    ("rep_archive", pa.string(), True, "status represented: shard (or, without copies, fold archive) holding the representative's structure, relative to results/atlas/"),
    ("rep_member", pa.string(), True, "status represented: the representative's PDB member in that shard"),
)

#: ``results/atlas/plddt.parquet``: per-residue pLDDT of every prediction.
PLDDT_SCHEMA = _schema(
    ("checksum", pa.string(), False, "MD5 (hex) of the sequence"),
    ("residue_plddt", pa.list_(pa.float32()), False, "C-alpha pLDDT of every residue, 0-1"),
)

#: ``results/atlas/structures/index.parquet``: where each archived structure lives.
INDEX_SCHEMA = _schema(
    ("checksum", pa.string(), False, "MD5 (hex) of the sequence"),
    ("collection", pa.string(), False, f"{HIGHCONF} (high-confidence structures) or {ALL} (atlas.all_structures: every folded structure), in the atlas's shards or, without copies, in the fold archives; a structure can be in both. In bins/index.parquet (atlas.bins, same schema): the ESM Atlas bin, e.g. tm_.60_.70_plddt_.80_.90, and archive is the bin shard bins/<bucket>/<bin>_NNNNNN.tar"),
    ("archive", pa.string(), False, "archive path relative to results/atlas/: the shard structures/<bucket>/highconf_NNNNNN.tar (an uncompressed .tar), or with atlas.copy_structures: false the fold job's archive in the store, of the same form (../store/<fingerprint>/chunks/chunk_NNNNNN/structures.tar with the default store.path)"),
    ("member", pa.string(), False, "PDB member name, <checksum>.pdb.gz"),
    ("data_offset", pa.int64(), False, "byte offset of the member's data (a complete gzip file) in the shard; its 512-byte tar header is just before"),
    ("data_length", pa.int64(), False, "bytes of that gzip file"),
    ("pdb_size", pa.int64(), False, "bytes of the PDB text once decompressed"),
    ("cif_member", pa.string(), True, "ModelCIF member name, <checksum>.cif.gz; null unless structures.formats has cif"),
    ("cif_offset", pa.int64(), True, "byte offset of the ModelCIF member's data (gzip) in the shard"),
    ("cif_length", pa.int64(), True, "bytes of that gzip file"),
    ("high_confidence", pa.bool_(), False, "passed the filter"),
    ("in_foldcomp", pa.bool_(), True, "in the Foldcomp database (null: no Foldcomp database for this collection)"),
    ("foldcomp_rmsd", pa.float32(), True, "all-atom RMSD of its Foldcomp round trip, Angstrom (null: not in the checked sample)"),
    ("foldcomp_reason", pa.string(), True, "why it was left out of the Foldcomp database (failed round trip); null otherwise"),
)

#: A fold job's committed segment of structures: each one's tar entries, data gzip-compressed
#: (:func:`foldatlas.archive.structure_entries`); internal to a fold job's partial folder.
SEGMENT_STRUCTURES_SCHEMA = pa.schema([("checksum", pa.string()), ("member", pa.string()), ("entry", pa.large_binary())])

#: foldseek --format-output columns written to hits.parquet (--format-mode 4 adds a header).
SEARCH_COLUMNS = ("query", "target", "fident", "alnlen", "evalue", "bits", "prob", "alntmscore", "qtmscore", "ttmscore", "lddt", "qlen", "tlen", "qcov", "tcov")
_FLOAT_COLUMNS = {"fident", "evalue", "bits", "prob", "alntmscore", "qtmscore", "ttmscore", "lddt", "qcov", "tcov"}

#: ``results/foldseek/clusters.parquet``: one row per high-confidence structure (ESM Atlas
#: style: sequence clusters, their best structure, foldseek clusters of those).
CLUSTERS_SCHEMA = _schema(
    ("member", pa.string(), False, "checksum of the high-confidence structure (joins metadata.parquet on checksum)"),
    ("plddt", pa.float32(), True, "its mean pLDDT, 0-1"),
    ("ptm", pa.float32(), True, "its pTM, 0-1"),
    ("seq_cluster_id", pa.int64(), True, "its sequence cluster (cluster_id of mmseqs/clusters.parquet); null without mmseqs.enabled, when every structure is its own sequence cluster"),
    ("seq_representative", pa.string(), False, "mmseqs's representative sequence of that cluster (may have no structure here); the member itself without mmseqs"),
    ("seq_cluster_structures", pa.int64(), False, "high-confidence structures in the sequence cluster"),
    ("representative", pa.string(), False, "the sequence cluster's structure of highest pTM x pLDDT (ties: smallest checksum): the one foldseek clustered"),
    ("is_representative", pa.bool_(), False, "member == representative"),
    ("cluster_id", pa.int64(), False, "0-based structural cluster of the representative (ordered by cluster_representative)"),
    ("cluster_representative", pa.string(), False, "representative of the structural cluster: the best pTM x pLDDT of its members (foldseek.representative: best_confidence) or foldseek's choice"),
    ("cluster_size", pa.int64(), False, "sequence-cluster representatives in the structural cluster (the entries foldseek clustered)"),
    ("cluster_structures", pa.int64(), False, "high-confidence structures in the structural cluster, all sequence clusters together"),
)
#: ``results/foldseek/representatives/representatives.parquet``: the structural clustering's
#: input, every high-confidence structure with its sequence cluster's representative.
REPRESENTATIVES_SCHEMA = pa.schema([CLUSTERS_SCHEMA.field(name) for name in ("member", "plddt", "ptm", "seq_cluster_id", "seq_representative", "seq_cluster_structures", "representative")])
#: ``results/foldseek/hits.parquet``
HITS_SCHEMA = _schema(
    ("query", pa.string(), False, "query checksum"),
    ("target_db", pa.string(), False, "the configured target it was found in"),
    ("target", pa.string(), False, "target entry name as foldseek reports it"),
    *((c, pa.float64() if c in _FLOAT_COLUMNS else pa.int64(), False, f"foldseek {c}") for c in SEARCH_COLUMNS[2:]),
)
#: ``results/mmseqs/clusters.parquet``
SEQ_CLUSTERS_SCHEMA = _schema(
    ("cluster_id", pa.int64(), False, "0-based cluster number (ordered by representative checksum)"),
    ("representative", pa.string(), False, "checksum of the representative sequence"),
    ("member", pa.string(), False, "checksum of the member sequence"),
    ("cluster_size", pa.int64(), False, "members in the cluster"),
)


#: Every documented file and its schema (the README's "Parquet schemas" section is built from it).
DOCUMENTED = (
    ("results/ingest/records.parquet", "one row per input record, in input order; with ingest.bucket_digits, by checksum bucket (records without a checksum in the first), then in input order: order by source_index, record_index for the input order", RECORDS_SCHEMA),
    ("results/ingest/sequences.parquet", "one row per unique sequence, sorted by checksum bucket (the first chunks.bucket_digits hex digits; none by default below 256 chunks), then length, then checksum", SEQUENCES_SCHEMA),
    ("results/chunks/chunk_NNNNNN.parquet", "the sequences of one chunk, sorted by length; all of one checksum bucket (plan.tsv's bucket column)", CHUNK_SCHEMA),
    ("results/store/<fingerprint>/chunks/chunk_NNNNNN/predictions.parquet", "one row per unique sequence of the chunk", PREDICTIONS_SCHEMA),
    ("results/store/<fingerprint>/chunks/chunk_NNNNNN/embeddings.parquet and results/atlas/embeddings.parquet", "one row per (folded sequence, layer), the atlas's a folder of one file per checksum bucket; D = 2560 for ESMFold's ESM-2 3B", embeddings_schema(2560, "float16", per_residue=True)),
    ("results/store/<fingerprint>/chunks/chunk_NNNNNN/index.parquet", "the chunk's seal, written last by its fold job (foldatlas.seal): one row per structure of the chunk, in chunk order, "
     "its byte range checked against its tar header once; key-value metadata foldatlas_seal (JSON): the SHA-256, size, modification time, inode and status-change time "
     "of the chunk's three files, its numbers of predictions and structures and the SHA-256 of their checksums sorted", STORE_INDEX_SCHEMA),
    ("results/store/<fingerprint>/releases/<name>/chunks.parquet", "one row per chunk the release folded, ascending (foldatlas 0.6; earlier releases list them in release.json)", RELEASE_CHUNKS_SCHEMA),
    ("results/store/<fingerprint>/releases/<name>/keys/HH.parquet", "one row per sequence the release folded whose checksum starts with HH, sorted by checksum", KEYS_SCHEMA),
    ("results/store/<fingerprint>/releases/<name>/structures/HH.parquet", "one row per structure the release folded whose checksum starts with HH, sorted by checksum", STORE_INDEX_SCHEMA),
    ("results/store/<fingerprint>/releases/<name>/sequences/HH.parquet", "one row per sequence the release folded whose checksum starts with HH, sorted by checksum", STORE_SEQUENCES_SCHEMA),
    ("results/store/<fingerprint>/releases/<name>/members/HH.parquet", "ingest.redundancy: one row per member the release resolved whose checksum starts with HH, sorted by checksum", MEMBERS_SCHEMA),
    ("results/atlas/metadata.parquet", "a folder of one file per checksum bucket (all.parquet unsplit): one row per input record, in input order within each bucket", METADATA_SCHEMA),
    ("results/atlas/plddt.parquet", "a folder of one file per checksum bucket: per-residue pLDDT of every folded sequence", PLDDT_SCHEMA),
    ("results/atlas/structures/index.parquet", "a folder of one file per checksum bucket: where each archived structure lives", INDEX_SCHEMA),
    ("results/foldseek/representatives/representatives.parquet", "one row per high-confidence structure, sorted by member: what foldseek_representatives chose (the representatives themselves are the foldseek database beside it)", REPRESENTATIVES_SCHEMA),
    ("results/foldseek/clusters.parquet", "one row per high-confidence structure, sorted by cluster_id, representative, member", CLUSTERS_SCHEMA),
    ("results/foldseek/hits.parquet", "a folder of one file per checksum bucket of the atlas (the queries of that bucket): one row per hit, sorted by query, e-value, bits, target", HITS_SCHEMA),
    ("results/mmseqs/clusters.parquet", "one row per unique sequence, sorted by cluster_id, member", SEQ_CLUSTERS_SCHEMA),
)


def compress_pae(pae: np.ndarray | None) -> bytes | None:
    """A ``pae`` cell: the (L, L) matrix as zstd-compressed float16, row-major (None stays None)."""
    if pae is None:
        return None
    import zstandard

    return zstandard.ZstdCompressor(level=3).compress(np.ascontiguousarray(pae, dtype=np.float16).tobytes())


def decompress_pae(blob: bytes, length: int) -> np.ndarray:
    """The (L, L) float16 PAE matrix (Angstrom) of a ``pae`` cell."""
    import zstandard

    raw = zstandard.ZstdDecompressor().decompress(blob, max_output_size=2 * length * length)
    return np.frombuffer(raw, dtype=np.float16).reshape(length, length)


def schemas_markdown() -> str:
    """Markdown tables of every documented Parquet schema (column, Arrow type, nullable, meaning)."""
    out = []
    for path, what, schema in DOCUMENTED:
        out.append(f"#### `{path}`\n\n{what[0].upper() + what[1:]}.\n\n| column | Arrow type | null | meaning |\n| --- | --- | --- | --- |")
        for f in schema:
            desc = (f.metadata or {}).get(b"description", b"").decode()
            out.append(f"| `{f.name}` | `{f.type}` | {'yes' if f.nullable else 'no'} | {desc} |")
        out.append("")
    return "\n".join(out)
