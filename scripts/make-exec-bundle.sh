#!/usr/bin/env bash
# Packs the executor for a GPU node that has only the CUDA driver/toolkit, cmake and ninja (no Debian
# packages, no network): bundle/ holds parallax-exec (stripped), every shared library it loads except
# the C library, the CUDA driver and the CUDA toolkit's own libraries (cuBLAS, cudart: the node has
# them; NCCL too unless PARALLAX_BUNDLE_NCCL=1, +210 MB), OpenMPI's runtime (mpirun, its plugins and
# help files) and the scenarios, with env.sh to point the loader and OpenMPI at them. About 60 MB.
# Run `parallax compare` on the predicted and measured timelines back here (it needs SimGrid).
#
#   scripts/make-exec-bundle.sh [BUILD_DIR] [BUNDLE_DIR]     (defaults: build, bundle)
#   on the GPU node:  source bundle/env.sh && exec/gpu-check.sh
#
# Built here on Debian 12 x86-64 (glibc 2.36): the GPU node needs an x86-64 Linux with glibc >= 2.36.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bundle=${2:-bundle}
[ -x "$build/exec/parallax-exec" ] || { echo "no $build/exec/parallax-exec: build first (cmake --build $build)" >&2; exit 2; }

rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib"
cp "$build/exec/parallax-exec" "$bundle/bin/"
strip "$bundle/bin/parallax-exec"
# The flash attention check (built with the CUDA backend), a step of exec/gpu-check.sh.
if [ -x "$build/exec/cuda/parallax-flash-check" ]; then
  cp "$build/exec/cuda/parallax-flash-check" "$bundle/bin/"
  strip "$bundle/bin/parallax-flash-check"
fi
mpirun_path=$(command -v mpirun || true)
[ -n "$mpirun_path" ] && cp "$(readlink -f "$mpirun_path")" "$bundle/bin/mpirun"
command -v orted >/dev/null && cp "$(readlink -f "$(command -v orted)")" "$bundle/bin/orted"

# Shared libraries, minus what the node must provide itself (glibc, the CUDA driver).
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libcuda\.so|libcublas|libcudart)'
[ "${PARALLAX_BUNDLE_NCCL:-0}" = 1 ] || skip="${skip%)}|libnccl)"
for binary in "$bundle"/bin/*; do
  ldd "$binary" | awk '/=> \//{print $1" "$3}' | while read -r name path; do
    [[ $name =~ $skip ]] && continue
    cp -Ln "$path" "$bundle/lib/$name" 2>/dev/null || true
  done
done
# OpenMPI loads its components (MCA plugins) at run time and reads its help texts.
ompi_lib=/usr/lib/x86_64-linux-gnu/openmpi
if [ -d "$ompi_lib/lib/openmpi3" ]; then
  mkdir -p "$bundle/openmpi/lib"
  cp -r "$ompi_lib/lib/openmpi3" "$bundle/openmpi/lib/"
  for plugin in "$bundle"/openmpi/lib/openmpi3/*.so; do
    ldd "$plugin" | awk '/=> \//{print $1" "$3}' | while read -r name path; do
      [[ $name =~ $skip ]] && continue
      cp -Ln "$path" "$bundle/lib/$name" 2>/dev/null || true
    done
  done
fi
[ -d /usr/share/openmpi ] && cp -r /usr/share/openmpi "$bundle/openmpi/share-openmpi"
[ -d /etc/openmpi ] && cp -r /etc/openmpi "$bundle/openmpi/etc"
cp -r scenarios "$bundle/scenarios"

cat > "$bundle/env.sh" <<'ENV'
# source bundle/env.sh: use the bundled executor, libraries and OpenMPI.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PATH="$here/bin:$PATH"
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OPAL_PREFIX="$here/openmpi"
export OMPI_MCA_mca_base_component_path="$here/openmpi/lib/openmpi3"
export OPAL_PKGDATADIR="$here/openmpi/share-openmpi"
export OPAL_SYSCONFDIR="$here/openmpi/etc"
export PARALLAX_DATA_DIR="$here/scenarios"
ENV
du -sh "$bundle"
echo "bundle ready: copy $bundle/ to the GPU node, then: source $bundle/env.sh"
