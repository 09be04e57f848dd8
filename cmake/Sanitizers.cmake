# Sanitizer and fuzzing instrumentation for parallax's own code.
#
# Carried by the INTERFACE target parallax::cxx, which every parallax target links, so that system
# libraries (protobuf, SimGrid, OpenMPI, GoogleTest) keep their own flags and no global flags are set.
#
#   -DPARALLAX_SANITIZE=address,undefined   ASan + UBSan, every report fatal (-fno-sanitize-recover=all).
#                                            libstdc++'s own bounds checks (_GLIBCXX_ASSERTIONS) come with it:
#                                            they catch operator[] past size() inside capacity, which ASan
#                                            cannot see.
#   -DPARALLAX_BUILD_FUZZERS=ON              (clang only) builds the libFuzzer targets in fuzz/ and only the
#                                            libraries they need; the libraries get coverage instrumentation.
set(PARALLAX_SANITIZE "" CACHE STRING
    "Sanitizers for parallax's own code, as for -fsanitize= (e.g. address,undefined); empty: none")
option(PARALLAX_BUILD_FUZZERS "Build the libFuzzer targets (clang) and only the libraries they need" OFF)

if(PARALLAX_SANITIZE)
  target_compile_options(parallax_cxx INTERFACE
    -fsanitize=${PARALLAX_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_compile_definitions(parallax_cxx INTERFACE _GLIBCXX_ASSERTIONS)
  target_link_options(parallax_cxx INTERFACE -fsanitize=${PARALLAX_SANITIZE})
  # GCC's flow-based warnings give false positives under -fsanitize=address (the instrumentation adds
  # paths they analyse), e.g. -Wmaybe-uninitialized in libstdc++'s std::regex; -Werror would make them
  # fatal. The normal build keeps them all as errors; here they stay warnings (this build is for the
  # sanitizers' findings at run time).
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(parallax_cxx INTERFACE -Wno-maybe-uninitialized -Wno-error=uninitialized
      -Wno-error=array-bounds -Wno-error=stringop-overflow -Wno-error=stringop-overread -Wno-error=restrict
      -Wno-error=null-dereference -Wno-error=free-nonheap-object)
  endif()
endif()

if(PARALLAX_BUILD_FUZZERS)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "PARALLAX_BUILD_FUZZERS needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++")
  endif()
  # Coverage feedback for the libraries; the fuzz targets themselves link -fsanitize=fuzzer (fuzz/CMakeLists.txt).
  target_compile_options(parallax_cxx INTERFACE -fsanitize=fuzzer-no-link)
endif()
