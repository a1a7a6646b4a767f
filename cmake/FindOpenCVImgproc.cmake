# Debian's libopencv-imgproc-dev ships headers and libraries but no CMake package (that comes with the
# much larger libopencv-dev), so find just core + imgproc. Defines the imported target OpenCV::imgproc.
find_path(OpenCVImgproc_INCLUDE_DIR opencv2/imgproc.hpp PATH_SUFFIXES opencv4)
find_library(OpenCVImgproc_LIBRARY opencv_imgproc)
find_library(OpenCVImgproc_CORE_LIBRARY opencv_core)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(OpenCVImgproc
  REQUIRED_VARS OpenCVImgproc_LIBRARY OpenCVImgproc_CORE_LIBRARY OpenCVImgproc_INCLUDE_DIR)
if(OpenCVImgproc_FOUND AND NOT TARGET OpenCV::imgproc)
  add_library(OpenCV::core UNKNOWN IMPORTED)
  set_target_properties(OpenCV::core PROPERTIES IMPORTED_LOCATION "${OpenCVImgproc_CORE_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${OpenCVImgproc_INCLUDE_DIR}")
  add_library(OpenCV::imgproc UNKNOWN IMPORTED)
  set_target_properties(OpenCV::imgproc PROPERTIES IMPORTED_LOCATION "${OpenCVImgproc_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${OpenCVImgproc_INCLUDE_DIR}" INTERFACE_LINK_LIBRARIES OpenCV::core)
endif()
mark_as_advanced(OpenCVImgproc_INCLUDE_DIR OpenCVImgproc_LIBRARY OpenCVImgproc_CORE_LIBRARY)
