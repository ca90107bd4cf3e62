#!/usr/bin/env bash
# Time the README's two quick-start commands as a new user runs them: a fresh clone, a fresh
# virtualenv, no pip cache, a fresh VLAGENT_HOME (so the offline weights are fetched again).
#   bash scripts/time_quickstart.sh [WORKDIR] [COMMANDS]   (default /tmp/vlagent-quickstart, "1 2")
# e.g. `bash scripts/time_quickstart.sh /tmp/qs 1` times command 1 only. Each line of
# WORKDIR/times.txt gives rc, seconds, the virtualenv's size, whether torch is in it, and the
# machine's load average before and after (the machine may be shared).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-/tmp/vlagent-quickstart}"
which="${2:-1 2}"
rm -rf "$work" && mkdir -p "$work"
block() { awk -v want="$1" '/^```bash$/{n++; getline; if (n==want) {print; exit}}' "$repo/README.md"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
run() {  # name, command: a fresh clone and venv each
  local dir="$work/$1"
  git clone -q "$repo" "$dir"
  (cd "$dir" && python3 -m venv .venv && . .venv/bin/activate \
     && export PIP_NO_CACHE_DIR=1 VLAGENT_HOME="$dir/home" \
     && before=$(load) && start=$(date +%s) && rc=0 && { bash -c "$2" > "$work/$1.log" 2>&1 || rc=$?; } \
     && seconds=$(( $(date +%s) - start )) \
     && torch=$(python -c "import importlib.util as u; print('torch in the venv' if u.find_spec('torch') else 'no torch')") \
     && echo "$1: rc $rc, $seconds s, venv $(du -sh .venv | cut -f1), $torch, load $before -> $(load)" | tee -a "$work/times.txt")
}
for n in $which; do
  run "command$n" "$(block "$n")"
done
