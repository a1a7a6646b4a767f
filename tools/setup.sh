#!/usr/bin/env bash
# Installs every Debian 12 package that convoy's build, tests and quickstart need, then configures and
# builds convoy in build/. Safe to run again: apt-get skips what is installed, ninja what is built.
#   tools/setup.sh                  packages + Release build of everything (tests included) in build/
#   tools/setup.sh --target convoy  packages + only the convoy binary (what the main job runs)
#   tools/setup.sh --deps           packages only
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git
  libdnnl-dev ocl-icd-opencl-dev opencl-headers          # oneDNN (its CMake config wants OpenCL)
  libopenmpi-dev openmpi-bin                             # MPI
  libhdf5-dev                                            # shards and checkpoints
  libspdlog-dev libfmt-dev libyaml-cpp-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libturbojpeg0-dev libopencv-imgproc-dev zlib1g-dev     # JPEG decode, resize, .gz
  libxxhash-dev libssl-dev                               # per-record checksums, SHA-256 of shards
  dataset-fashion-mnist                                  # the quickstart's data
  python3-h5py python3-numpy python3-pil python3-xxhash  # format examples and test helpers
  python3-matplotlib                                     # the tricks table's curves
  python3-torch python3-torchvision                      # PyTorch interop tools and their tests
  slurm-wlm munge                                        # the Slurm tests
  iproute2                                               # emulated nodes (ip netns, tc)
  clang libclang-rt-14-dev                               # libFuzzer (tools/fuzz.sh)
  libtcmalloc-minimal4                                   # the PyTorch comparison runs with it
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
[[ "${1:-}" == "--deps" ]] && exit 0
targets=()
[[ "${1:-}" == "--target" ]] && targets=("${2:?--target needs a target name}")

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build "${targets[@]}"
