# Every external dependency of convoy, each with the Debian 12 package that provides it.
# A missing one stops configure with a message that names the package (tools/setup.sh installs them all).

macro(convoy_require name debian_package)
  find_package(${name} ${ARGN} QUIET)
  if(NOT ${name}_FOUND)
    message(FATAL_ERROR
      "convoy needs ${name}, which was not found. On Debian 12 install it with:\n"
      "  apt-get install ${debian_package}\n"
      "(tools/setup.sh installs every package the build and the tests need).")
  endif()
  list(APPEND CONVOY_DEPENDENCY_SUMMARY "${name}")
endmacro()

list(APPEND CMAKE_MODULE_PATH "${CMAKE_CURRENT_LIST_DIR}")

# Debian's dnnl-config.cmake also requires OpenCL (its GPU runtime), from ocl-icd-opencl-dev.
convoy_require(OpenCL "ocl-icd-opencl-dev opencl-headers")
convoy_require(dnnl libdnnl-dev CONFIG)
convoy_require(MPI "libopenmpi-dev openmpi-bin" COMPONENTS C)
convoy_require(HDF5 libhdf5-dev COMPONENTS C)
convoy_require(spdlog libspdlog-dev)
convoy_require(yaml-cpp libyaml-cpp-dev)
convoy_require(CLI11 libcli11-dev)
convoy_require(nlohmann_json nlohmann-json3-dev)
convoy_require(GTest "libgtest-dev libgmock-dev")
convoy_require(ZLIB zlib1g-dev)
convoy_require(OpenMP "libgomp1 (part of g++)")
convoy_require(Threads libc6-dev)
convoy_require(OpenCVImgproc libopencv-imgproc-dev)

# TurboJPEG: Debian's libturbojpeg0-dev ships a pkg-config file but no CMake target for it.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(TURBOJPEG QUIET IMPORTED_TARGET libturbojpeg)
endif()
if(NOT TURBOJPEG_FOUND)
  message(FATAL_ERROR "convoy needs TurboJPEG, which was not found. On Debian 12 install it with:\n"
    "  apt-get install libturbojpeg0-dev pkg-config")
endif()

# CUDA is optional: found, it is compiled (this project's machines have no GPU to run it on).
option(CONVOY_WITH_CUDA "Build the CUDA side when the CUDA toolkit is present" ON)
set(CONVOY_CUDA_SUMMARY "not found")
if(CONVOY_WITH_CUDA)
  if(NOT DEFINED CUDAToolkit_ROOT AND EXISTS /usr/local/cuda)
    set(CUDAToolkit_ROOT /usr/local/cuda)
  endif()
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_FOUND)
    find_package(CUDNN QUIET)
    find_package(NCCL QUIET)
    set(CONVOY_CUDA_SUMMARY "CUDA ${CUDAToolkit_VERSION} (${CUDAToolkit_NVCC_EXECUTABLE})")
    if(CUDNN_FOUND)
      string(APPEND CONVOY_CUDA_SUMMARY ", cuDNN ${CUDNN_VERSION}")
    else()
      string(APPEND CONVOY_CUDA_SUMMARY ", cuDNN not found")
    endif()
    if(NCCL_FOUND)
      string(APPEND CONVOY_CUDA_SUMMARY ", NCCL ${NCCL_VERSION}")
    else()
      string(APPEND CONVOY_CUDA_SUMMARY ", NCCL not found")
    endif()
  endif()
endif()
