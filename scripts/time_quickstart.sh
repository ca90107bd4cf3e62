#!/usr/bin/env bash
# Time the README's two quick-start commands as a new user runs them: a fresh clone, a fresh
# virtualenv, no pip cache, a fresh VLAGENT_HOME (so the offline weights are fetched again).
#   bash scripts/time_quickstart.sh [WORKDIR]      (default /tmp/vlagent-quickstart)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-/tmp/vlagent-quickstart}"
rm -rf "$work" && mkdir -p "$work"
cmd1=$(awk '/^```bash$/{n++; getline; if (n==1) {print; exit}}' "$repo/README.md")
cmd2=$(awk '/^```bash$/{n++; getline; if (n==2) {print; exit}}' "$repo/README.md")
run() {  # name, command: a fresh clone and venv each
  local dir="$work/$1"
  git clone -q "$repo" "$dir"
  (cd "$dir" && python3 -m venv .venv && . .venv/bin/activate \
     && export PIP_NO_CACHE_DIR=1 VLAGENT_HOME="$dir/home" \
     && start=$(date +%s) && rc=0 && { bash -c "$2" > "$work/$1.log" 2>&1 || rc=$?; } \
     && echo "$1: rc $rc, $(( $(date +%s) - start )) s" | tee -a "$work/times.txt")
}
run command1 "$cmd1"
run command2 "$cmd2"
