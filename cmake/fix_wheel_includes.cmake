# Used only with ROS 2 from the PyPI wheels: scripts/setup.sh passes it as
#   -DCMAKE_PROJECT_INCLUDE=<this file>   (CMake runs it right after project()).
# Why: the wheels export imported targets (e.g. std_msgs::std_msgs__rosidl_generator_py) whose
# INTERFACE_INCLUDE_DIRECTORIES point at the wheel build host's interpreter under
# /opt/python/cp3XX-cp3XX/, which does not exist here, and CMake rejects missing include paths.
# At the end of configuring, swap those prefixes for this interpreter's Python and numpy headers.
if(Python3_EXECUTABLE)
  set(_fer_py "${Python3_EXECUTABLE}")
else()
  find_program(_fer_py NAMES python3 python REQUIRED)
endif()
execute_process(COMMAND "${_fer_py}" -c "import sysconfig; print(sysconfig.get_paths()['include'])"
  OUTPUT_VARIABLE _FER_PY_INCLUDE OUTPUT_STRIP_TRAILING_WHITESPACE)
execute_process(COMMAND "${_fer_py}" -c "import numpy; print(numpy.get_include())"
  OUTPUT_VARIABLE _FER_NUMPY_INCLUDE OUTPUT_STRIP_TRAILING_WHITESPACE)

function(_fer_rewrite_wheel_include_dirs)
  get_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(_dirs AND _dirs MATCHES "/opt/python/cp3")
      string(REGEX REPLACE "/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\\.[0-9]+/site-packages/numpy/_core/include"
        "${_FER_NUMPY_INCLUDE}" _dirs "${_dirs}")
      string(REGEX REPLACE "/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\\.[0-9]+"
        "${_FER_PY_INCLUDE}" _dirs "${_dirs}")
      set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_dirs}")
    endif()
  endforeach()
  # The project keeps its venvs in the source tree (.venv, .venv-<distro>). rosidl_generator_py adds the venv's
  # Python/numpy headers as PUBLIC include dirs of our generated library, and CMake refuses to
  # export an interface path inside the source tree. Only C code linking that Python extension
  # would use them (none does), so drop them from the exported interface; compiling keeps them.
  get_property(_own DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY BUILDSYSTEM_TARGETS)
  foreach(_target IN LISTS _own)
    get_target_property(_type ${_target} TYPE)
    if(_type STREQUAL "INTERFACE_LIBRARY" OR _type STREQUAL "UTILITY")
      continue()
    endif()
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(_dirs)
      list(FILTER _dirs EXCLUDE REGEX "^${CMAKE_SOURCE_DIR}/\\.venv[^/]*/")
      set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_dirs}")
    endif()
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _fer_rewrite_wheel_include_dirs)
