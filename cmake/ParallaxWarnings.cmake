# Warnings for parallax's own code only, carried by an INTERFACE target (as Taskflow does) so that
# third-party and generated code keep their own flags.
add_library(parallax_warnings INTERFACE)
add_library(parallax::warnings ALIAS parallax_warnings)
target_compile_options(parallax_warnings INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Werror -Wno-error=deprecated-declarations>)

# Every parallax target is C++20.
add_library(parallax_cxx INTERFACE)
add_library(parallax::cxx ALIAS parallax_cxx)
target_compile_features(parallax_cxx INTERFACE cxx_std_20)
