#!/usr/bin/env bash
# Checks tools/gpu-check.sh and its bundle on this machine, which has no GPU, as far as that goes
# (../shared/GPU-MACHINE.md): in a clean Debian chroot without our -dev packages or libraries, with the
# CUDA libraries laid out as the GPU machine lays them out (the toolkit's runtime under /usr/local/cuda,
# cuDNN, cuBLAS and NCCL in a Python site-packages/nvidia/*/lib tree), the script must find every library
# it needs and stop with "no GPU" (exit 3) where a GPU is needed.
#   tools/gpu-check-chroot.sh [CHROOT]     default /srv/gpu-chroot (made with debootstrap if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
chroot_dir=${1:-/srv/gpu-chroot}
bundle=build-gpu/convoy-gpu-bundle.tar.xz
cuda=/usr/local/cuda/lib
[[ -f $bundle ]] || tools/gpu-bundle.sh "$bundle"
if [[ ! -x $chroot_dir/bin/bash ]]; then
  command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null
  debootstrap --variant=minbase bookworm "$chroot_dir" http://deb.debian.org/debian >/dev/null
fi
if ! chroot "$chroot_dir" sh -c 'command -v xz' >/dev/null; then  # the GPU machine's tar unpacks .xz
  chroot "$chroot_dir" sh -c 'apt-get install -y -q xz-utils' >/dev/null 2>&1
fi

# The GPU machine's layout: runtime in the toolkit, the rest from the wheels.
site=$chroot_dir/opt/venv/lib/python3.12/site-packages/nvidia
rm -rf "$chroot_dir/opt/venv" "$chroot_dir/usr/local/cuda" "$chroot_dir/repo"
mkdir -p "$chroot_dir/usr/local/cuda/lib64" "$site"/{cudnn,cublas,nccl}/lib "$chroot_dir/repo/tools" \
  "$chroot_dir/repo/build-gpu"
cp -a "$cuda"/libcudart.so* "$chroot_dir/usr/local/cuda/lib64/"
cp -a "$cuda"/libcudnn*.so* "$site/cudnn/lib/"
cp -a "$cuda"/libcublas*.so* "$site/cublas/lib/"
cp -a "$cuda"/libnccl.so* "$site/nccl/lib/"
cp tools/gpu-check.sh "$chroot_dir/repo/tools/"
cp "$bundle" "$chroot_dir/repo/build-gpu/"

# Nothing of ours is in the chroot: no oneDNN, MPI, HDF5, ... (what the bundle must bring).
for lib in libdnnl.so.2 libmpi.so.40 libhdf5_serial.so.103 libyaml-cpp.so.0.7 libcudnn.so.9; do
  if chroot "$chroot_dir" sh -c "ldconfig -p | grep -q $lib"; then
    echo "gpu-check-chroot: $lib is installed in the chroot: it is not clean" >&2
    exit 1
  fi
done

mountpoint -q "$chroot_dir/proc" || mount -t proc proc "$chroot_dir/proc"
mountpoint -q "$chroot_dir/sys" || mount -t sysfs sys "$chroot_dir/sys"
trap 'umount "$chroot_dir/proc" "$chroot_dir/sys" 2>/dev/null || true' EXIT
rc=0
chroot "$chroot_dir" env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME=/root \
  CONVOY_SITE_PACKAGES=/opt/venv/lib/python3.12/site-packages /repo/tools/gpu-check.sh /repo/out || rc=$?
echo "--- summary.json"
cat "$chroot_dir/repo/out/summary.json"
echo "--- check.log (tail)"
tail -5 "$chroot_dir/repo/out/check.log"
if ((rc != 3)); then
  echo "gpu-check-chroot: gpu-check.sh exited $rc; expected 3 (every library found, no GPU)" >&2
  exit 1
fi
grep -q "no GPU is visible to this process" "$chroot_dir/repo/out/check.log" ||
  { echo "gpu-check-chroot: convoy did not say that a GPU is needed" >&2; exit 1; }
echo "gpu-check-chroot: passed: every library found in a clean chroot, and a clear stop where a GPU is needed"
