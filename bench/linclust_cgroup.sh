#!/bin/bash
# mmseqs linclust (the ESM Atlas's clust30 options, as foldatlas.annotate.mmseqs_linclust
# runs it) under a hard cgroup-v1 memory limit, as Slurm's task/cgroup
# (ConstrainRAMSpace) applies a job's --mem: whether a --split-memory-limit is safe
# under that limit, with the memory-mapped sequences counted as page cache.
#
#   bench/linclust_cgroup.sh FASTA LIMIT_MB SPLIT     e.g. bench/linclust_cgroup.sh u.fasta 2000 1400M
#
# Needs root and a writable /sys/fs/cgroup/memory (cgroup v1). FASTA: one line per
# sequence, e.g. the unique.fasta bench/annotate_sizes.py's sequences give. Prints the
# exit code, the cgroup's peak usage (page cache included), how often it hit the limit
# (failcnt) and the OOM kills.
set -euo pipefail
fasta=$1 limit_mb=$2 split=$3
cg=/sys/fs/cgroup/memory/foldatlas-bench-$$
work=$(mktemp -d)
trap 'rmdir "$cg" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir "$cg"
echo $((limit_mb * 1000 * 1000)) > "$cg/memory.limit_in_bytes"
start=$(date +%s)
rc=0
bash -c "echo \$\$ > $cg/cgroup.procs; set -e
mmseqs createdb '$fasta' '$work/seqs' --createdb-mode 1
mmseqs linclust '$work/seqs' '$work/clu' '$work/tmp' --min-seq-id 0.3 -c 0.8 --cov-mode 1 --cluster-mode 2 --kmer-per-seq 100 --threads 2 --split-memory-limit $split
mmseqs createtsv '$work/seqs' '$work/seqs' '$work/clu' '$work/clu.tsv' --threads 2" > "$work/log" 2>&1 || rc=$?
echo "limit ${limit_mb} MB, --split-memory-limit ${split}: exit ${rc}, $(( $(date +%s) - start )) s," \
  "peak $(( $(cat "$cg/memory.max_usage_in_bytes") / 1000000 )) MB, failcnt $(cat "$cg/memory.failcnt")," \
  "$(grep oom_kill "$cg/memory.oom_control" | grep -v disable), clusters of $( { wc -l < "$work/clu.tsv"; } 2>/dev/null || echo 0) sequences"
