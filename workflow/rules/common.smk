# Config access, the layout of the results tree, input lists and target functions. Every
# other .smk file reads the configuration, paths and the chunk list only through what is
# defined here.
import json
import os

import pyarrow.parquet as pq
from snakemake.exceptions import IncompleteCheckpointException, WorkflowError

from foldatlas.chunking import fold_packages, read_plan
from foldatlas.fasta import expand_inputs
from foldatlas.inputs import input_list_change
from foldatlas.layout import CHUNK_ID_PATTERN, Layout, target_db_prefix
from foldatlas.settings import SlurmSettings, fold_outputs_key, model_fingerprint
from foldatlas.slurm import runtime_request, site_resources
from foldatlas.atlas import as_dataset
from foldatlas.buckets import atlas_bucket_digits, bucket_names, has_members
from foldatlas.store import WHOLE, read_manifest, release_buckets
from foldatlas.annotate import TOOLS, is_db, tool_binary
from foldatlas.redundancy import mmseqs_binary
from foldatlas.segments import require_greedy
from foldatlas.sizing import (
    alignment_hits,
    check_segments,
    job_size,
    mem_mb as sized_mem_mb,
    runtime_min,
)


wildcard_constraints:
    source=r"\d+",
    # 000042 ... 999999, then 1000000 ...: ids never run out (foldatlas.layout.chunk_id)
    chunk=CHUNK_ID_PATTERN,
    package=CHUNK_ID_PATTERN,
    # a checksum bucket of chunks.bucket_digits hex digits, or all (a plan not split)
    bucket=r"all|[0-9a-f]{1,2}",
    # the number of a search target (foldseek.search.targets)
    target=r"\d+",
    # a round and a query shard of the structural clustering (foldseek.cluster)
    round=r"\d+",
    shard=r"\d+",
    # a segment of the sequence clustering split into jobs (mmseqs.segments)
    segment=r"\d+",


ENV = "../../envs/foldatlas.yaml"

# Every path of the results tree (output.root, default results/) and of the store.
LAYOUT = Layout.from_config(config["output"], config["store"])

# Segments are clustered greedily, longest first: mmseqs.cluster_mode 2 (stops here).
if config["mmseqs"]["enabled"]:
    require_greedy(config["mmseqs"]["cluster_mode"], config["mmseqs"]["segments"])

# Every setting that can change a fold job's outputs (canonical JSON): a param of
# plan_chunks and fold_chunk, so that only a change of one of them refolds.
FOLD_OUTPUTS_KEY = fold_outputs_key(config)

# The store's part for this model and these settings: fold jobs write there, and a
# sequence it holds is never planned again.
STORE = LAYOUT.store(model_fingerprint(config))

# Expanded once at start-up: a missing file, a glob matching nothing, a file that is not
# regular (a FIFO), a name that is not UTF-8 or a file listed twice fails here. An entry
# naming an existing file is taken literally; only other entries are globs.
INPUT_FASTA = expand_inputs(config["input"]["fasta"])


def check_binaries_on_host():
    """Look for the external programs (foldseek, mmseqs; mmseqs for ingest.redundancy too) on this host, at the start of a
    real run (onstart: never in a dry run or --lint), and only when their rules will run
    on this host with this host's PATH: local execution without --sdm conda. Otherwise
    (--sdm conda, a cluster executor) each rule looks for its program in its own
    environment when it starts, and fails with the same message."""
    from snakemake.settings.types import DeploymentMethod

    if not workflow.local_exec or (
        DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    ):
        return
    for tool in TOOLS:
        if config[tool]["enabled"]:
            tool_binary(tool, config[tool]["binary"])
    if config["ingest"]["redundancy"] != "none":
        mmseqs_binary(config["mmseqs"]["binary"])


def upgrade_layout():
    """An atlas of foldatlas < 0.8 has one file where each table is now a folder of one
    file per checksum bucket (metadata.parquet, ..., structures/index.parquet), and so
    has foldatlas < 0.9's foldseek/hits.parquet: when a run starts, those files are
    removed (the bucket jobs write their rows again; Snakemake could not remove a
    bucket's file inside a file). Never in a dry run."""
    tables = list(LAYOUT.atlas.tables)
    search = config["foldseek"]["search"]["targets"]
    if config["foldseek"]["enabled"] and search:  # else kept: nothing would remake them
        tables.append(LAYOUT.foldseek_hits)
    for table in tables:
        if table.is_file():
            as_dataset(table)


onstart:
    check_binaries_on_host()
    upgrade_layout()


def check_input_list():
    """Stop when input files were removed or reordered since the last plan and the rerun
    triggers cannot see it (no ``input`` trigger, e.g. --rerun-triggers mtime): the run
    would otherwise keep the old atlas and its accounting. The profile's triggers include
    ``input``, and then planning simply runs again."""
    from snakemake.settings.types import RerunTrigger

    settings = getattr(workflow, "dag_settings", None)
    if settings is None or RerunTrigger.INPUT in settings.rerun_triggers:
        return
    if settings.forceall or "plan_chunks" in {str(r) for r in settings.forcerun or ()}:
        return
    change = input_list_change(LAYOUT.inputs, INPUT_FASTA)
    if change is not None:
        raise WorkflowError(
            f"{change}, and the rerun triggers ({', '.join(t.name.lower() for t in settings.rerun_triggers)}) "
            "cannot see that: the atlas and its accounting would stay those of the old inputs. Run with the "
            "profile's triggers (leave out --rerun-triggers) or add --forcerun plan_chunks."
        )


def plan_settings():
    """The chunks section as plan_chunks's params: chunks.bucket_digits left out while it
    is the default (auto), so that a plan of foldatlas 0.6, whose params knew no such
    key, is not planned again (which would fold its unpublished chunks again)."""
    chunks = config["chunks"]
    return {k: v for k, v in chunks.items() if (k, v) != ("bucket_digits", "auto")}


def ingest_settings():
    """The ingest section as params: ingest.bucket_digits left out while it is 0, so that
    a plan of foldatlas < 0.11, whose params knew no such key, is not planned again."""
    return {k: v for k, v in config["ingest"].items() if (k, v) != ("bucket_digits", 0)}


def ingest_part_output():
    """read_fasta's part: one file, or with ingest.bucket_digits a folder of one file per
    checksum bucket. Temporary: plan_chunks or plan_bucket reads it once."""
    if config["ingest"]["bucket_digits"]:
        return temp(directory(LAYOUT.ingest_bucket_parts("{source}")))
    return temp(LAYOUT.ingest_part("{source}"))


def plan_inputs(wildcards):
    """What plan_chunks plans from: every file's part, or with ingest.bucket_digits the
    plan of every checksum bucket (plan_bucket), in bucket order."""
    digits = config["ingest"]["bucket_digits"]
    if digits:
        return {
            "buckets": expand(
                rules.plan_bucket.output.plan, bucket=bucket_names(digits)
            )
        }
    return {"parts": ingest_parts(wildcards)}


def atlas_settings():
    """The atlas section as the bucket jobs' params: without what cannot change a
    bucket's files (atlas.report, atlas.bins, and atlas.bucket_digits, which says which
    buckets there are; shard_size without copies), so that switching the report on assembles
    nothing again; copy_structures only when false (an atlas of foldatlas < 0.12, made
    with copies, is not assembled again)."""
    atlas = config["atlas"]
    leave = {"report", "bucket_digits", "bins"}
    leave |= {"copy_structures"} if atlas["copy_structures"] else {"shard_size"}
    return {k: v for k, v in atlas.items() if k not in leave}


def input_fasta(wildcards):
    """The input file behind the {source} wildcard (its index in INPUT_FASTA)."""
    return INPUT_FASTA[int(wildcards.source)]


def ingest_parts(wildcards):
    """One validated Parquet part per input file."""
    return expand(rules.read_fasta.output.part, source=range(len(INPUT_FASTA)))


def ingest_counts(wildcards):
    """The independent count of each input file, made while it was read."""
    return expand(rules.read_fasta.output.counted, source=range(len(INPUT_FASTA)))


_PLANS = {}


def chunk_plans():
    """The plan_chunks checkpoint's plan as {chunk id: ChunkPlan}, read once per plan file.

    Input, params and resource functions of every fold job call this: without the
    cache, a plan of N chunks would be read N times (a DAG of 10^4 chunks took minutes).
    Once the checkpoint's output was found complete it stays so for this process
    (Snakemake's set of created checkpoint outputs only grows), so the check is made
    until it first succeeds; a plan rewritten by the checkpoint within this run has a
    new mtime and is read again."""
    if not _PLANS.get("checkpoint_done"):
        checkpoints.plan_chunks.get()
    path = LAYOUT.plan
    key = (path, os.stat(path).st_mtime_ns)
    if key not in _PLANS:
        _PLANS.clear()
        _PLANS[key] = {p.id: p for p in read_plan(path)}
    _PLANS["checkpoint_done"] = True
    return _PLANS[key]


_PACKAGES = {}


def packages():
    """The plan's fold packages (fold.chunks_per_job > 1) as {package id: [ChunkPlan]},
    computed once per plan (every fold job's input, params and resources ask)."""
    plans = chunk_plans()
    key = (id(plans), config["fold"]["chunks_per_job"])
    if key not in _PACKAGES:
        _PACKAGES.clear()
        _PACKAGES[key] = fold_packages(
            list(plans.values()), config["fold"]["chunks_per_job"]
        )
        _PACKAGES["params"] = {}
        # kept with its key: a plan read again cannot reuse a freed dict's id
        _PACKAGES["plans"] = plans
    return _PACKAGES[key]


def package_params(package):
    """What fold_package's params and resources say about ``package`` (chunk ids, chunk
    files, partial folders, content, minutes), computed once per package: Snakemake asks
    for every param of every job more than once, and at 2x10^4 packages of 50 chunks
    the paths alone took tens of seconds of a dry run."""
    plans = packages()
    memo = _PACKAGES["params"]
    if package not in memo:
        if package not in plans:
            raise ValueError(f"package {package} is not in the plan ({LAYOUT.plan})")
        ids = [p.id for p in plans[package]]
        # the layout's paths with a NUL (never in a path) where the chunk id goes
        chunk_file, partial = str(LAYOUT.chunk_file("\0")), str(LAYOUT.partial("\0"))
        memo[package] = {
            "chunks": ids,
            "files": [chunk_file.replace("\0", c) for c in ids],
            "partial": [partial.replace("\0", c) for c in ids],
            "content": ",".join(p.content for p in plans[package]),
            "minutes": fold_minutes(sum(p.est_seconds for p in plans[package])),
        }
    return memo[package]


def package_chunks(wildcards):
    """Chunk ids of the package behind {package}."""
    return package_params(wildcards.package)["chunks"]


def package_chunk_files(wildcards):
    """The chunk files of the package behind {package}."""
    return package_params(wildcards.package)["files"]


def package_partials(wildcards):
    """Where each chunk of the package keeps its committed segments."""
    return package_params(wildcards.package)["partial"]


def package_content(wildcards):
    """What the package holds (its chunks' contents, in order): a param of fold_package,
    as chunk_content is of fold_chunk."""
    return package_params(wildcards.package)["content"]


def package_minutes(wildcards):
    """Runtime asked for a fold package (fold_minutes of its chunks together)."""
    return package_params(wildcards.package)["minutes"]


def chunk_file(wildcards):
    """The chunk file behind {chunk}, available once plan_chunks has run."""
    checkpoints.plan_chunks.get()
    return LAYOUT.chunk_file(wildcards.chunk)


def chunk_plan(chunk):
    """The plan.tsv row of one chunk."""
    plans = chunk_plans()
    if chunk not in plans:
        raise ValueError(f"chunk {chunk} is not in the plan ({LAYOUT.plan})")
    return plans[chunk]


def chunk_content(wildcards):
    """What the chunk holds (SHA-256 of its sequence checksums, from plan.tsv): a param of
    fold_chunk. A chunk planned again with the same content is not folded again; one
    whose content changed is."""
    return chunk_plan(wildcards.chunk).content


def fold_gpus():
    """GPUs per fold job: none when fold.device is cpu, else one."""
    return 0 if config["fold"]["device"] == "cpu" else 1


# Site settings of Slurm jobs (slurm: section); ignored by local runs.
SLURM = SlurmSettings.from_config(config["slurm"])


def runtime_minutes(minutes, attempt):
    """Runtime asked for by every job, in minutes: ``minutes`` x ``attempt``, at most
    slurm.max_runtime (the partitions' limit), so that a retry is never refused."""
    return runtime_request(minutes, attempt, SLURM.max_runtime)


def cpu_site():
    """Slurm site settings (partition, account, constraint) of CPU jobs."""
    return site_resources(SLURM, gpu=False)


def gpu_site():
    """Slurm site settings of fold jobs (GPU partition and model when they ask for a GPU)."""
    return site_resources(SLURM, gpu=fold_gpus() > 0)


def fold_minutes(est_seconds):
    """Runtime asked for a fold job or package: twice its chunks' estimated GPU time plus
    15 min for start-up and merging (runtime_minutes multiplies it by the attempt)."""
    return int(15 + 2 * est_seconds / 60)


def fold_runtime_minutes(wildcards):
    """Runtime asked for a fold job (fold_minutes of its chunk)."""
    return fold_minutes(chunk_plan(wildcards.chunk).est_seconds)


_BY_BUCKET = {}


def bucket_jobs():
    """The plan's chunk ids and fold packages (with each one's last chunk) by checksum
    bucket, computed once per plan: every publish_bucket job asks, and at 10^5 chunks a
    scan per bucket would slow the DAG."""
    plans = chunk_plans()
    key = (id(plans), config["fold"]["chunks_per_job"])
    if key not in _BY_BUCKET:
        chunks, held = {}, {}
        for c, p in plans.items():
            chunks.setdefault(p.bucket or WHOLE, []).append(c)
        if config["fold"]["chunks_per_job"] > 1:
            for package, members in packages().items():
                for b in sorted({p.bucket or WHOLE for p in members}):
                    held.setdefault(b, []).append((package, members[-1].chunk))
        _BY_BUCKET.clear()
        # the plan is kept with its key: a plan read again cannot reuse a freed dict's id
        _BY_BUCKET[key] = (chunks, held, plans)
    return _BY_BUCKET[key][:2]


def receipt_holds(package):
    """Whether a published package's receipt records the package as the plan and the
    config make it now (its chunks, the store and the model fingerprint): listed again,
    fold_package would otherwise be asked to run for chunks the store already holds."""
    path = rules.fold_package.output.receipt.format(package=package)
    try:
        with open(path) as fh:
            receipt = json.load(fh)
        chunks = list(receipt["chunks"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    # a receipt of foldatlas < 0.12 records the chunks only
    store = receipt.get("store", str(STORE.root))
    fingerprint = receipt.get("fingerprint", STORE.fingerprint)
    now = (list(package_params(package)["chunks"]), str(STORE.root), STORE.fingerprint)
    return (chunks, store, fingerprint) == now


def fold_outputs(wildcards):
    """Predictions, embeddings and structure archive of every chunk of the checksum
    bucket {bucket} planned in this release (the chunks of earlier releases are in the
    store already), or with fold.chunks_per_job > 1 the receipt of every fold package
    holding one of them."""
    chunks, held = bucket_jobs()
    if config["fold"]["chunks_per_job"] > 1:
        # a package is a job, not a product: once the store published its chunks (this
        # plan's release, published by an earlier run), it is not needed again, whatever
        # chunks_per_job says now. Its receipt stays listed while it records this very
        # package: the set of inputs publish_bucket recorded must not change on the next
        # run (it would publish the bucket again)
        published = read_manifest(STORE)["next_chunk"]
        pending = [
            p
            for p, last in held.get(wildcards.bucket, [])
            if last >= published or receipt_holds(p)
        ]
        return {"packages": expand(rules.fold_package.output.receipt, package=pending)}
    out = rules.fold_chunk.output
    mine = chunks.get(wildcards.bucket, [])
    return {
        "predictions": expand(out.predictions, chunk=mine),
        "embeddings": expand(out.embeddings, chunk=mine),
        "structures": expand(out.structures, chunk=mine),
    }


_BUCKETS = {}


def release_parts(wildcards):
    """What every publish_bucket job of the plan staged: one per checksum bucket of the
    plan's release (read once per planned release.json)."""
    checkpoints.plan_chunks.get()
    path = LAYOUT.planned_release
    key = (path, os.stat(path).st_mtime_ns)
    if key not in _BUCKETS:
        _BUCKETS.clear()
        _BUCKETS[key] = release_buckets(path)
    return expand(rules.publish_bucket.output.part, bucket=_BUCKETS[key])


_ATLAS_BUCKETS = {}


def atlas_buckets():
    """The atlas's checksum buckets (atlas.bucket_digits; auto: by the run's unique
    sequences), one assemble_bucket and one bucket_metadata job each; read once per
    sequences.parquet."""
    return _atlas_shape()[0]


def _atlas_shape():
    """(the atlas's buckets, whether any sequence of the run is a member): from
    sequences.parquet's footer (row count, null count of representative), read once per
    file."""
    checkpoints.plan_chunks.get()
    path = LAYOUT.sequences
    key = (path, os.stat(path).st_mtime_ns, config["atlas"]["bucket_digits"])
    if key not in _ATLAS_BUCKETS:
        meta = pq.read_metadata(path)
        _ATLAS_BUCKETS.clear()
        _ATLAS_BUCKETS[key] = (
            bucket_names(
                atlas_bucket_digits(config["atlas"]["bucket_digits"], meta.num_rows)
            ),
            has_members(meta),
        )
    return _ATLAS_BUCKETS[key]


def atlas_parts(wildcards):
    """Every bucket's part, and every file and folder of every bucket: what the atlas's
    finish adds up, and what makes each of them a target (one deleted is made again, and
    the finish after it)."""
    return {
        "parts": expand(rules.assemble_bucket.output.part, bucket=atlas_buckets()),
        "products": atlas_products(wildcards),
    }


def representative_predictions(wildcards):
    """The predictions a bucket_metadata job joins: its bucket's and, when the run has
    members (ingest.redundancy, now or in a release it reuses), every bucket's (a
    member's representative may be in any), with their index files."""
    buckets, members = _atlas_shape()
    buckets = buckets if members else [wildcards.bucket]
    out = rules.assemble_bucket.output
    return {
        "predictions": expand(out.predictions, bucket=buckets),
        "index": expand(out.index, bucket=buckets),
    }


def bucket_accounting(wildcards):
    """Every bucket's accounting, for check_accounting to add up."""
    return expand(rules.check_bucket.output.report, bucket=atlas_buckets())


def atlas_products(wildcards):
    """Every file and folder of the atlas's buckets."""
    buckets = atlas_buckets()
    out = rules.assemble_bucket.output
    products = [out.shards, out.index, out.plddt, out.embeddings]
    products.append(rules.bucket_metadata.output.metadata)
    if config["atlas"]["bins"]:
        products += [rules.repack_bins.output.shards, rules.repack_bins.output.index]
    return [path for p in products for path in expand(p, bucket=buckets)]


def final_targets(wildcards):
    """What `snakemake` builds by default, from the stages switched on in config: every
    product, so that one missing or removed is built again."""
    check_input_list()
    atlas = LAYOUT.atlas
    targets = [
        LAYOUT.records,
        LAYOUT.sequences,
        LAYOUT.inputs,
        LAYOUT.release,
        LAYOUT.accounting,
    ]
    targets += [atlas.summary, atlas.config]
    try:
        targets += atlas_products(wildcards)
    except IncompleteCheckpointException:
        # before planning, the finish's own inputs (atlas_parts) bring the buckets' files;
        # raised here, the list would wait for the checkpoint, which then would not run
        # again when one of its own outputs (listed above) is missing
        pass
    if config["atlas"]["report"]:
        targets.append(LAYOUT.report)
    if config["foldseek"]["enabled"]:
        targets.append(LAYOUT.foldseek_clusters)
        try:
            if config["foldseek"]["search"]["targets"]:
                targets += search_hits(wildcards)
            if config["atlas"]["bins"]:
                targets += bins_dbs(wildcards)
        except IncompleteCheckpointException:
            pass  # the clusters bring the atlas, then the buckets' files are listed
    if config["mmseqs"]["enabled"]:
        targets.append(LAYOUT.mmseqs_clusters)
    return targets


def foldseek_dbs(wildcards):
    """Every bucket's foldseek databases (what foldseek_cluster takes its
    representatives from)."""
    return expand(rules.foldseek_createdb.output.db, bucket=atlas_buckets())


def metadata_parts(wildcards):
    """Every current bucket's file of metadata.parquet (what foldseek_representatives
    reads: no other split's file, and no wait for the finish)."""
    return expand(rules.bucket_metadata.output.metadata, bucket=atlas_buckets())


def bins_dbs(wildcards):
    """Every bucket's foldseek databases per Atlas bin (atlas.bins)."""
    return expand(rules.foldseek_bins_db.output.db, bucket=atlas_buckets())


def search_hits(wildcards):
    """Every bucket's search hits: the files of the hits.parquet folder."""
    return expand(rules.foldseek_search.output.hits, bucket=atlas_buckets())


def _search_targets():
    """(number, target) of the search targets that are structures, not foldseek
    databases: each is made a database once (foldseek_target_db)."""
    targets = config["foldseek"]["search"]["targets"]
    return [(str(k), t) for k, t in enumerate(targets) if not is_db(t)]


def structure_target_numbers():
    """The numbers of the search targets that are structures, as a wildcard constraint
    (one that matches nothing when there is none)."""
    return "|".join(k for k, _ in _search_targets()) or "(?!)"


def search_target(wildcards):
    """The structures of search target number ``wildcards.target``."""
    targets = dict(_search_targets())
    if wildcards.target not in targets:
        raise WorkflowError(
            f"expected the number of a search target that is structures "
            f"({', '.join(targets) or 'none configured'}), found {wildcards.target!r}"
        )
    return targets[wildcards.target]


def search_target_dbs(wildcards):
    """The databases made of the search targets that are structures."""
    return [LAYOUT.foldseek_target_db(k) for k, _ in _search_targets()]


def search_target_prefixes():
    """Search target (as configured) -> the database made of it, for those that are
    structures; a target that is a database is searched as it is."""
    return {
        t: str(target_db_prefix(LAYOUT.foldseek_target_db(k)))
        for k, t in _search_targets()
    }


def sized_mem(kind, name):
    """mem_mb of an annotate job from the size of its input ``name`` (capped by the
    section's max_mem_mb), growing with the attempt."""
    section = config["mmseqs"] if kind.startswith("mmseqs") else config["foldseek"]
    # foldseek cluster's first step (kmermatcher) takes 300 k-mers a structure
    kmer_kinds = ("foldseek_cluster", "foldseek_cluster_linclust")
    kmers = section.get("kmer_per_seq", 300 if kind in kmer_kinds else 0)
    targets = config["foldseek"]["search"]["targets"]
    if kind == "foldseek_search":
        # a target that is structures: the database made of it (its index is exact)
        made = search_target_prefixes()
        targets = [made.get(t, t) for t in targets]

    def mem_mb(wildcards, input, attempt):
        size = job_size(kind, _named_inputs(input, name), targets=targets)
        cap = section["max_mem_mb"]
        # a cascade round's clust holds its alignment graph: sized by its searches' hits
        searches = input.get("searches", []) if kind == "foldseek_cluster_round" else []
        hits = alignment_hits(searches)
        # stop before a job of the split outgrows the cap
        if kind == "mmseqs_split_segments":
            check_segments(size.sequences, mmseqs_segments(), cap)
        return sized_mem_mb(
            kind, size, attempt=attempt, max_mem_mb=cap, kmer_per_seq=kmers, hits=hits
        )

    return mem_mb


def _named_inputs(input, name):
    """A job's input ``name``, or the inputs ``name`` (a list) together."""
    if isinstance(name, str):
        return input[name]
    return [
        str(p)
        for n in name
        for p in ([input[n]] if isinstance(input[n], str) else input[n])
    ]


def createdb_index():
    """foldseek_createdb's index input: its bucket's file of index.parquet without copies
    (atlas.copy_structures: false), nothing with them (the shards are read)."""
    if config["atlas"]["copy_structures"]:
        return []
    return rules.assemble_bucket.output.index


def createdb_input():
    """The input a foldseek_createdb job is sized by: its bucket's shards, or without
    copies (atlas.copy_structures: false) its bucket's index file."""
    return "structures" if config["atlas"]["copy_structures"] else "index"


def sized_runtime(kind, name):
    """runtime (minutes) of an annotate job from the size of its input ``name`` (a
    search: its queries, the shard databases; a cascade's search job: 1/shards of the
    cluster's work), growing with the attempt."""
    size_kind = "foldseek_representatives" if kind == "foldseek_search" else kind
    share = 1 / cluster_shards() if kind == "foldseek_cluster_search" else 1.0

    def runtime(wildcards, input, threads, attempt):
        size = job_size(size_kind, _named_inputs(input, name))
        # grows with the attempt, capped at slurm.max_runtime (runtime_minutes)
        minutes = runtime_min(kind, size, threads=threads, attempt=1, share=share)
        return runtime_minutes(minutes, attempt)

    return runtime


def cluster_shards():
    """Jobs per round of the structural clustering (foldseek.cluster.shards); 1: one
    foldseek cluster job."""
    return config["foldseek"]["cluster"]["shards"]


def cluster_kind():
    """How foldseek_cluster is sized: the whole foldseek cluster, or (a cascade) the
    merge of its rounds."""
    return "foldseek_cluster" if cluster_shards() == 1 else "foldseek_cluster_round"


def cluster_settings():
    """What can change the structural clusters: foldseek.representative and the cluster
    options. Not foldseek.cluster.shards (the same clusters), nor the search or the
    threads: a change of those reruns no clustering job."""
    cluster = config["foldseek"]["cluster"]
    return {
        "representative": config["foldseek"]["representative"],
        "cluster": {k: v for k, v in cluster.items() if k != "shards"},
    }


def cascade_settings():
    """What can change the cascade's clusterings: the cluster options only (not
    foldseek.representative, which only the final table reads)."""
    return {"cluster": cluster_settings()["cluster"]}


def cascade_previous(wildcards):
    """The clustering whose representatives a round clusters: the pre-clustering's for
    round 0, the previous round's after."""
    r = int(wildcards.round)
    if r == 0:
        return str(LAYOUT.cascade_linclust)
    return str(LAYOUT.cascade_round(str(r - 1)))


def cascade_searches(wildcards):
    """The search jobs of one round, one per shard."""
    shards = range(cluster_shards())
    return [str(LAYOUT.cascade_search(wildcards.round, str(k))) for k in shards]


def cascade_inputs(wildcards):
    """foldseek_cluster's clusterings of a cascade (foldseek.cluster.shards > 1): the
    pre-clustering and each round's; none for one foldseek cluster job."""
    if cluster_shards() == 1:
        return {}
    rounds = range(config["foldseek"]["cluster"]["steps"])
    return {
        "linclust": str(LAYOUT.cascade_linclust),
        "rounds": [str(LAYOUT.cascade_round(str(r))) for r in rounds],
    }


def mmseqs_segments():
    """Jobs the sequence clustering is split into (mmseqs.segments); 1: one linclust."""
    return config["mmseqs"]["segments"]


def segment_folders():
    """The split job's folders, one per segment (temporary: removed once read)."""
    segments = range(mmseqs_segments())
    return [temp(directory(str(LAYOUT.segment(str(s))))) for s in segments]


def segment_left(round_, segment):
    """What is left of ``segment`` when round ``round_`` starts: the whole segment in
    round 0, else what the previous round's assignment left."""
    r = int(round_)
    if r == 0:
        return str(LAYOUT.segment(segment))
    return str(LAYOUT.segment_assign(str(r - 1), segment))


def segment_settings():
    """What can change the segmented clustering: linclust's thresholds and the segments
    (not the threads, the memory or the binary)."""
    keys = ("min_seq_id", "coverage", "cov_mode", "cluster_mode", "kmer_per_seq")
    return {k: config["mmseqs"][k] for k in keys + ("segments",)}


def mmseqs_cluster_settings():
    """mmseqs_cluster's params: one linclust job's, the mmseqs section as foldatlas 0.14
    recorded it (without the segments key: upgrading reruns nothing); the merge of a
    segmented clustering's, segment_settings()."""
    if mmseqs_segments() == 1:
        return {k: v for k, v in config["mmseqs"].items() if k != "segments"}
    return segment_settings()


def sequence_cluster_kind():
    """How mmseqs_cluster is sized: one linclust over every sequence, or the merge."""
    return "mmseqs_cluster" if mmseqs_segments() == 1 else "mmseqs_merge_segments"


def segment_inputs(wildcards):
    """mmseqs_cluster's pairs of a segmented clustering (mmseqs.segments > 1): every
    round's clusters and every assignment's; none for one linclust job."""
    p = mmseqs_segments()
    if p == 1:
        return {}
    rounds = [str(LAYOUT.segment_round_pairs(str(r))) for r in range(p)]
    assignments = [
        str(LAYOUT.segment_assign_pairs(str(r), str(s)))
        for r in range(p)
        for s in range(r + 1, p)
    ]
    return {"pairs": rounds + assignments}


def mmseqs_cluster_binary():
    """mmseqs_cluster's program: mmseqs for one linclust job; none for the merge."""
    return config["mmseqs"]["binary"] if mmseqs_segments() == 1 else None
