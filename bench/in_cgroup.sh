#!/bin/bash
# Run a command under a hard cgroup-v1 memory limit, as Slurm's task/cgroup
# (ConstrainRAMSpace) applies a job's --mem, and report how it went.
#
#   bench/in_cgroup.sh LIMIT_MB COMMAND [ARG...]
#
# Needs root and a writable /sys/fs/cgroup/memory (cgroup v1). The command's output
# goes to stdout/stderr as usual; the last line on stderr is the exit code, the wall
# time, the cgroup's peak usage (page cache included), how often usage hit the limit
# (failcnt) and the OOM kills. Exits with the command's exit code.
set -euo pipefail
limit_mb=$1
shift
cg=/sys/fs/cgroup/memory/foldatlas-bench-$$
mkdir "$cg"
trap 'rmdir "$cg" 2>/dev/null || true' EXIT
echo $((limit_mb * 1000 * 1000)) > "$cg/memory.limit_in_bytes"
start=$(date +%s)
rc=0
bash -c 'echo $$ > "$0/cgroup.procs"; exec "$@"' "$cg" "$@" || rc=$?
echo "cgroup limit ${limit_mb} MB: exit ${rc}, $(( $(date +%s) - start )) s," \
  "peak $(( $(cat "$cg/memory.max_usage_in_bytes") / 1000000 )) MB, failcnt $(cat "$cg/memory.failcnt")," \
  "$(grep oom_kill "$cg/memory.oom_control" | grep -v disable)" >&2
exit "$rc"
