#!/usr/bin/env bash
# Builds what tools/gpu-check.sh carries to a GPU machine that has none of our Debian libraries:
# convoy and the GPU test binaries, built here for that machine (no -march=native: its processor is
# not ours; CUDA code for its GPU), plus every shared library they load that is not glibc, libstdc++
# or CUDA's own (cuDNN, cuBLAS, NCCL and the CUDA runtime come from the GPU machine's toolkit and
# Python wheels), plus a relocatable Open MPI (mpirun, orted, plugins, help files). Writes one
# tar.xz (checked to fit the 64 MiB that travels with the working tree).
#   tools/gpu-bundle.sh [OUT.tar.xz]      default: build-gpu/convoy-gpu-bundle.tar.xz
# Environment: CONVOY_GPU_ARCHS (default 90: the H200 of ../shared/GPU-MACHINE.md).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-gpu/convoy-gpu-bundle.tar.xz}
archs=${CONVOY_GPU_ARCHS:-90}
limit_mib=60

tools/setup.sh --deps
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCONVOY_WITH_CUDA=on -DCONVOY_NATIVE=OFF \
  -DCMAKE_CUDA_ARCHITECTURES="$archs" >/dev/null
bins=(convoy tests/ops/test_ops tests/ops/test_cuda tests/ops/test_cuda_host tests/comm/test_nccl)
ninja -C build-gpu convoy test_ops test_cuda test_cuda_host test_nccl

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/convoy-gpu
mkdir -p "$root/bin" "$root/sys"
for b in "${bins[@]}"; do cp "build-gpu/$b" "$root/bin/"; done
git rev-parse HEAD > "$root/COMMIT" 2>/dev/null || echo unknown > "$root/COMMIT"
git status --porcelain | head -20 > "$root/DIRTY" || true
echo "archs $archs" > "$root/BUILD"
sed -n 2p build-gpu/convoy-cuda.txt >> "$root/BUILD"

# Open MPI as Debian lays it out, copied under sys/ with its absolute paths (OPAL_PREFIX=sys/usr
# relocates it: its plugins are found under the prefix, as are its help files).
put() {  # copies path $1 (a file, resolved if a link, or a folder) to the same path under sys/
  mkdir -p "$root/sys$(dirname "$1")"
  if [[ -d $1 ]]; then cp -a "$1" "$root/sys$(dirname "$1")/"; else cp -L "$1" "$root/sys$1"; fi
}
for p in /usr/bin/orterun /usr/bin/orted /usr/lib/x86_64-linux-gnu/openmpi /usr/lib/x86_64-linux-gnu/pmix2 \
  /usr/share/openmpi /usr/share/pmix; do
  [[ -e $p ]] && put "$p"
done
ln -s orterun "$root/sys/usr/bin/mpirun"

# Every shared library the binaries and Open MPI's plugins load, except the system's own (glibc,
# libstdc++, libgcc) and CUDA's (the GPU machine brings those).
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libresolv\.so|libutil\.so|libstdc\+\+\.so|libgcc_s\.so|libcuda\.so|libcudart\.so|libcublas|libcudnn|libnccl|libnvrtc|libnvJitLink)'
objects=("${bins[@]/#/build-gpu/}" /usr/bin/orted /usr/bin/orterun)
while IFS= read -r so; do objects+=("$so"); done < <(find /usr/lib/x86_64-linux-gnu/openmpi /usr/lib/x86_64-linux-gnu/pmix2 -name '*.so*' -type f)
declare -A seen=()
missing=()
for o in "${objects[@]}"; do
  while read -r name arrow path _; do
    [[ $arrow == "=>" ]] || continue
    [[ $name =~ $skip ]] && continue
    if [[ $path == "not" ]]; then
      # A plugin of a network this bundle does not carry (InfiniBand, UCX, OFI): Open MPI skips it.
      [[ $o == /usr/lib/x86_64-linux-gnu/openmpi/* || $o == /usr/lib/x86_64-linux-gnu/pmix2/* ]] && continue
      missing+=("$o: $name"); continue
    fi
    path=$(realpath -s "$path")
    path=${path/#\/lib\//\/usr\/lib\/}  # /lib is /usr/lib on Debian 12
    [[ -n ${seen[$path]:-} ]] && continue
    seen[$path]=1
    [[ -e $root/sys$path ]] || put "$path"
  done < <(ldd "$o" 2>/dev/null)
done
if ((${#missing[@]})); then
  printf 'gpu-bundle: a library is missing here:\n  %s\n' "${missing[@]}" >&2
  exit 1
fi
find "$root/sys" -name '*.so*' -type f | wc -l > "$root/LIBS"

mkdir -p "$(dirname "$out")"
tar -C "$stage" -cJf "$out" convoy-gpu
size=$(du -m "$out" | cut -f1)
echo "gpu-bundle: $out: $size MiB ($(cat "$root/LIBS") libraries, archs $archs, commit $(cut -c1-10 "$root/COMMIT"))"
if ((size > limit_mib)); then
  echo "gpu-bundle: $size MiB is more than the $limit_mib MiB that can travel with the working tree" >&2
  exit 1
fi
