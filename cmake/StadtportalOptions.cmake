# One INTERFACE target carries the compiler options of all of stadtportal's own code.
# Generated code links stadtportal_generated_options instead (no -Werror).
add_library(stadtportal_options INTERFACE)
target_compile_options(stadtportal_options INTERFACE
  -Wall -Wextra -Wpedantic -Werror
  -Wno-unused-parameter
  # GCC 12 reports false positives for std::string concatenation at -O2+ (GCC PR 105329).
  -Wno-restrict)
target_include_directories(stadtportal_options INTERFACE ${PROJECT_SOURCE_DIR})

add_library(stadtportal_generated_options INTERFACE)
target_compile_options(stadtportal_generated_options INTERFACE -w)

if(STADTPORTAL_SANITIZE)
  foreach(t stadtportal_options stadtportal_generated_options)
    target_compile_options(${t} INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    target_link_options(${t} INTERFACE -fsanitize=address,undefined)
  endforeach()
endif()

# The libFuzzer build (tests/fuzz, scripts/fuzz): clang, every own target instrumented
# for coverage, ASan and UBSan; the fuzz executables link libFuzzer's main. Warnings that
# only clang knows stay warnings here (the GCC build is the one held to -Werror).
if(STADTPORTAL_FUZZ)
  foreach(t stadtportal_options stadtportal_generated_options)
    target_compile_options(${t} INTERFACE -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
      -fno-sanitize-recover=undefined)
    target_link_options(${t} INTERFACE -fsanitize=address,undefined)
  endforeach()
  target_compile_options(stadtportal_options INTERFACE -Wno-error -Wno-unknown-warning-option)
endif()
