#!/usr/bin/env bash
# Every ```cpp block in README.md, docs/*.md and docs/api/*.md is a complete program: compile each against
# the build tree (through meson's uninstalled pkg-config file) and run it. A block that
# includes distributed/distributed.hpp links chainrule-distributed and runs under
# mpirun -np 2 (skipped, and said so, when the build has no MPI).
# Usage: doc_examples.sh SOURCE_ROOT BUILD_ROOT
set -euo pipefail
src=$1 build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=$(PKG_CONFIG_PATH=$build/meson-uninstalled pkg-config --cflags --libs chainrule)
dist_flags=""
if [[ -f $build/meson-uninstalled/chainrule-distributed-uninstalled.pc ]] && command -v mpirun > /dev/null; then
  dist_flags=$(PKG_CONFIG_PATH=$build/meson-uninstalled pkg-config --cflags --libs chainrule-distributed)
fi
export LD_LIBRARY_PATH=$build/autograd:$build/nn:$build/optim:$build/distributed
n=0
for md in "$src/README.md" "$src"/docs/*.md "$src"/docs/api/*.md; do
  awk -v out="$tmp/$(basename "$md" .md)" '
    /^```cpp$/ { inside = 1; n++; file = out "-" n ".cpp"; next }
    /^```$/ { inside = 0; next }
    inside { print > file }' "$md"
done
compile_and_run() {
  local f=$1 use=$flags run=()
  if grep -q 'distributed/distributed.hpp' "$f"; then
    [[ -n $dist_flags ]] || { echo "skipped (no MPI in this build): $(basename "$f")"; return 0; }
    use=$dist_flags
    run=(mpirun -np 2 --allow-run-as-root --oversubscribe)
  fi
  if ! c++ -std=c++20 -w "$f" $use -o "${f%.cpp}" 2> "${f%.cpp}.err"; then
    echo "FAIL (compile): $(basename "$f")"; cat "${f%.cpp}.err"; return 1
  fi
  if ! timeout 120 "${run[@]}" "${f%.cpp}" > "${f%.cpp}.out" 2>&1; then
    echo "FAIL (run): $(basename "$f")"; cat "${f%.cpp}.out"; return 1
  fi
  echo "ok: $(basename "$f")"
}
export -f compile_and_run
export flags dist_flags
ls "$tmp"/*.cpp | xargs -P 2 -I{} bash -c 'compile_and_run "$@"' _ {}
echo "$(ls "$tmp"/*.cpp | wc -l) code blocks compiled and ran"
