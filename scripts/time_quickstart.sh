#!/usr/bin/env bash
# Time the README's two quick-start commands as a new user runs them: a fresh clone, a fresh
# virtualenv, no pip or uv cache, a fresh VLAGENT_HOME (so the offline weights are fetched again).
#   bash scripts/time_quickstart.sh [WORKDIR] [COMMANDS]   (default /tmp/vlagent-quickstart, "1 2")
# e.g. `bash scripts/time_quickstart.sh /tmp/qs 1` times command 1 only. Each command's line in
# WORKDIR/times.txt gives rc, seconds, the virtualenv's size, whether torch is in it and the
# machine's load average before and after (the machine may be shared); then one line per `&&`
# step of the command with its seconds (the steps run in order and stop at the first failure,
# as `&&` does).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-/tmp/vlagent-quickstart}"
which="${2:-1 2}"
rm -rf "$work" && mkdir -p "$work"
block() { awk -v want="$1" '/^```bash$/{n++; getline; if (n==want) {print; exit}}' "$repo/README.md"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
run() {  # name, command: a fresh clone and venv each
  local name="$1" dir="$work/$1" log="$work/$1.log" rc=0 step t start before steps=()
  git clone -q "$repo" "$dir"
  cd "$dir" && python3 -m venv .venv && . .venv/bin/activate
  export PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1 VLAGENT_HOME="$dir/home"
  before=$(load) && start=$(date +%s)
  while IFS= read -r step; do
    t=$(date +%s)
    bash -c "$step" >> "$log" 2>&1 || rc=$?
    steps+=("    $(( $(date +%s) - t )) s  ${step:0:60}")
    [ "$rc" -eq 0 ] || break
  done < <(sed 's/ && /\n/g' <<< "$2")
  local torch; torch=$(python -c "import importlib.util as u; print('torch in the venv' if u.find_spec('torch') else 'no torch')")
  echo "$name: rc $rc, $(( $(date +%s) - start )) s, venv $(du -sh .venv | cut -f1), $torch, load $before -> $(load)" | tee -a "$work/times.txt"
  printf '%s\n' "${steps[@]}" | tee -a "$work/times.txt"
  deactivate && cd "$repo"
}
for n in $which; do
  run "command$n" "$(block "$n")"
done
