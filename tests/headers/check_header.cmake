# check_header.cmake: one header test (see CMakeLists.txt here), run as
#   cmake -DCOMPILER=cc|c++ -DLANG=C|CXX -DINCLUDE=<include dir>
#         -DHEADER=actio/file.h -DOUT=<file prefix> -P check_header.cmake
# Writes a translation unit that includes HEADER twice and compiles it with
# warnings as errors. As C++, each function the header declares is declared
# again with C linkage, which does not compile if extern "C" misses it.
# The unit is written at test time, so it follows the header as it is now.
set(tu "#include \"${HEADER}\"\n#include \"${HEADER}\"\n")
set(flags -Wall -Wextra -Wpedantic -Werror -Wshadow -fsyntax-only -I${INCLUDE})
if(LANG STREQUAL "C")
  string(APPEND tu "typedef int actio_header_check;\n")
  set(src ${OUT}.c)
  list(PREPEND flags -std=c11 -Wstrict-prototypes)
else()
  # Function declarations start a line: a return type, then actio_name(.
  file(STRINGS ${INCLUDE}/${HEADER} decls REGEX "^[a-z][a-z0-9_ ]*[ *]actio_[a-z0-9_]+\\(")
  foreach(d ${decls})
    if(NOT d MATCHES "^typedef" AND d MATCHES "(actio_[a-z0-9_]+)\\(")
      string(APPEND tu "extern \"C\" decltype(${CMAKE_MATCH_1}) ${CMAKE_MATCH_1};\n")
    endif()
  endforeach()
  set(src ${OUT}.cpp)
  list(PREPEND flags -std=c++11)
endif()
file(WRITE ${src} "${tu}")
execute_process(COMMAND ${COMPILER} ${flags} ${src} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${HEADER} does not compile alone as ${LANG} (${src})")
endif()
