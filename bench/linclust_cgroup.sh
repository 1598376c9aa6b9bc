#!/bin/bash
# mmseqs linclust (the ESM Atlas's clust30 options, as foldatlas.annotate.mmseqs_linclust
# runs it) under a hard cgroup-v1 memory limit (bench/in_cgroup.sh): whether a
# --split-memory-limit is safe under that limit, with the memory-mapped sequences
# counted as page cache.
#
#   bench/linclust_cgroup.sh FASTA LIMIT_MB SPLIT     e.g. bench/linclust_cgroup.sh u.fasta 2000 1400M
#
# FASTA: one line per sequence, e.g. the unique.fasta bench/annotate_sizes.py's
# sequences give. Prints in_cgroup.sh's line, then the number of clustered sequences.
set -euo pipefail
fasta=$1 limit_mb=$2 split=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "--split-memory-limit ${split}"
"$(dirname "$0")/in_cgroup.sh" "$limit_mb" bash -c "set -e
mmseqs createdb '$fasta' '$work/seqs' --createdb-mode 1
mmseqs linclust '$work/seqs' '$work/clu' '$work/tmp' --min-seq-id 0.3 -c 0.8 --cov-mode 1 --cluster-mode 2 --kmer-per-seq 100 --threads 2 --split-memory-limit $split
mmseqs createtsv '$work/seqs' '$work/seqs' '$work/clu' '$work/clu.tsv' --threads 2" > "$work/log" || true
echo "clusters of $( { wc -l < "$work/clu.tsv"; } 2>/dev/null || echo 0) sequences"
