#!/usr/bin/env bash
# Builds a tiny downstream program three ways and runs it: against an installed tree through
# pkg-config, against the same tree through CMake's find_package, and with chainrule as a
# meson subproject. Usage: downstream.sh SOURCE_ROOT BUILD_ROOT PREFIX LIBDIR
set -euo pipefail
src=$1 build=$2 prefix=$3 libdir=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$build" --destdir "$tmp/dest" --no-rebuild --quiet
root=$tmp/dest$prefix
export LD_LIBRARY_PATH=$root/$libdir

echo "== pkg-config"
flags=$(PKG_CONFIG_PATH=$root/$libdir/pkgconfig pkg-config --define-variable=prefix="$root" --cflags --libs chainrule)
c++ -std=c++20 "$src/tests/downstream/main.cpp" $flags -o "$tmp/via-pkg-config"
"$tmp/via-pkg-config"

echo "== CMake find_package(chainrule)"
cmake -S "$src/tests/downstream" -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$root" -DCMAKE_BUILD_TYPE=Release > "$tmp/cmake.log" \
  || { cat "$tmp/cmake.log"; exit 1; }
cmake --build "$tmp/cmake" -j2 > "$tmp/cmake-build.log" || { cat "$tmp/cmake-build.log"; exit 1; }
"$tmp/cmake/downstream"

echo "== meson subproject"
mkdir -p "$tmp/sub/subprojects"
cp "$src/tests/downstream/meson.build" "$src/tests/downstream/main.cpp" "$tmp/sub/"
ln -s "$src" "$tmp/sub/subprojects/chainrule"
meson setup "$tmp/sub/build" "$tmp/sub" -Dchainrule:examples=false -Dchainrule:default_library=shared > "$tmp/meson.log" \
  || { cat "$tmp/meson.log"; exit 1; }
ninja -C "$tmp/sub/build" -j2 > "$tmp/ninja.log" || { cat "$tmp/ninja.log"; exit 1; }
"$tmp/sub/build/downstream"
