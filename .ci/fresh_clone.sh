#!/usr/bin/env bash
# Do what a newcomer does: clone the COMMITTED tree (HEAD) into a temporary folder, run the
# README's two commands there from nothing (`make demo`, then `make test`), and report each
# command's exit code, wall time and test counts. Uncommitted changes are not in the clone:
# commit first. Usage: make fresh-clone [KEEP=1]   (KEEP=1 keeps the folder; it is kept
# anyway when a command fails). Logs: demo.log and test.log in the folder.
set -uo pipefail
src=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
sha=$(git -C "$src" rev-parse HEAD)
dirty=$(git -C "$src" status --porcelain --untracked-files=no | wc -l)
root=$(mktemp -d "${TMPDIR:-/tmp}/ptyframe-fresh.XXXXXX")
dst="$root/ptyframe"
echo "fresh clone of $sha into $dst"
[ "$dirty" -gt 0 ] && echo "note: $dirty tracked file(s) changed but not committed: not in the clone"
git clone --quiet --no-checkout "$src" "$dst" || exit 1
git -C "$dst" fetch --quiet "$src" HEAD && git -C "$dst" checkout --quiet --detach FETCH_HEAD || exit 1

# a newcomer's shell: no venv of ours, no make flags from the make that called this
fresh() { env -u VIRTUAL_ENV -u PYTHONPATH -u MAKEFLAGS -u MAKELEVEL -u MFLAGS "$@"; }

declare -A rc secs
for cmd in demo test; do
  echo "running: make $cmd (log: $dst/$cmd.log)"
  t0=$(date +%s)
  (cd "$dst" && fresh make "$cmd") >"$dst/$cmd.log" 2>&1
  rc[$cmd]=$?
  secs[$cmd]=$(( $(date +%s) - t0 ))
done

echo
echo "== fresh-clone report: $sha =="
for cmd in demo test; do
  printf 'make %-5s exit %-3s wall %dm%02ds\n' "$cmd" "${rc[$cmd]}" \
    $(( secs[$cmd] / 60 )) $(( secs[$cmd] % 60 ))
done
echo "make demo wrote: $(cd "$dst/demo/result" 2>/dev/null && ls | tr '\n' ' ')"
echo "test counts (each pytest summary of make test, in order: core + plugins; MPI tier, one"
echo "per rank; parallel-HDF5 tier, one per rank):"
# not anchored: two ranks share one stdout, so a summary can follow another rank's dots
grep -oE '[0-9]+ (passed|failed|errors?|skipped|deselected)[^=]* in [0-9.]+s( \([0-9:]+\))?|no tests ran' \
  "$dst/test.log" | sed 's/^/  /'
grep -E '^(FAILED|ERROR) ' "$dst/test.log" | sed 's/^/  /' | head -40
grep -E 'skipping the parallel-HDF5 tier' "$dst/test.log" | sed 's/^/  /'
for cmd in demo test; do
  if [ "${rc[$cmd]}" -ne 0 ]; then
    echo "-- last lines of make $cmd --"
    tail -25 "$dst/$cmd.log"
  fi
done
if [ "${rc[demo]}" -eq 0 ] && [ "${rc[test]}" -eq 0 ] && [ "${KEEP:-0}" != 1 ]; then
  logs="${root}.logs"
  mkdir -p "$logs" && cp "$dst/demo.log" "$dst/test.log" "$logs/"
  rm -rf "$root"
  echo "both green; removed $root (its logs: $logs)"
  exit 0
fi
echo "kept $root"
[ "${rc[demo]}" -eq 0 ] && [ "${rc[test]}" -eq 0 ]
