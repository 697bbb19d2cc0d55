# stadtportal_embed_migrations(TARGET <name> [DIR <migrations dir>] [LIBRARIES <libs>] OUT <variable>)
# Generates a source that compiles the versioned SQL files into a binary, so the
# binary (and its container) always carries exactly the migrations it was built with.
# LIBRARIES adds the migrations of shared libraries (libs/<lib>/migrations: the tables
# a library works on, e.g. events' outbox and inbox; versions from 900 on, see
# docs/adr/0018-event-contracts.md). Sets <variable> to the generated file, to be added
# to the service's executables.
function(stadtportal_embed_migrations)
  cmake_parse_arguments(ARG "" "TARGET;DIR;OUT" "LIBRARIES" ${ARGN})
  set(sql "")
  foreach(dir IN LISTS ARG_DIR ARG_LIBRARIES)
    if(NOT IS_ABSOLUTE "${dir}")
      set(dir "${PROJECT_SOURCE_DIR}/libs/${dir}/migrations")
    endif()
    file(GLOB files CONFIGURE_DEPENDS "${dir}/V*__*.sql")
    if(NOT files)
      message(FATAL_ERROR "no migrations in ${dir}")
    endif()
    list(APPEND sql ${files})
  endforeach()
  list(SORT sql)
  set(out "${CMAKE_CURRENT_BINARY_DIR}/${ARG_TARGET}_migrations.cc")
  add_custom_command(
    OUTPUT "${out}"
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} "-DFILES=${sql}" -P "${PROJECT_SOURCE_DIR}/cmake/embed_migrations.cmake"
    DEPENDS ${sql} "${PROJECT_SOURCE_DIR}/cmake/embed_migrations.cmake"
    COMMENT "embedding migrations of ${ARG_TARGET}"
    VERBATIM)
  set(${ARG_OUT} "${out}" PARENT_SCOPE)
endfunction()

# stadtportal_service(NAME <name> SOURCES <files> DEPS <targets> TESTS <files>
#                     [LIBRARY_MIGRATIONS <libs>])
# Declares the three targets every service has, named alike:
#   <name>_lib (logic, linked by main and tests), <name> (binary), <name>_test.
# LIBRARY_MIGRATIONS: the libraries whose tables the service has (events, mail).
function(stadtportal_service)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS;TESTS;LIBRARY_MIGRATIONS" ${ARGN})
  add_library(${ARG_NAME}_lib STATIC ${ARG_SOURCES})
  target_link_libraries(${ARG_NAME}_lib PUBLIC ${ARG_DEPS} stadtportal_options)
  stadtportal_embed_migrations(TARGET ${ARG_NAME} DIR "${CMAKE_CURRENT_SOURCE_DIR}/migrations"
                               LIBRARIES ${ARG_LIBRARY_MIGRATIONS} OUT migrations)
  add_executable(${ARG_NAME} main.cc ${migrations})
  set_target_properties(${ARG_NAME} PROPERTIES OUTPUT_NAME "stadtportal-${ARG_NAME}"
                                               RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/bin")
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_NAME}_lib)
  if(STADTPORTAL_BUILD_TESTS AND ARG_TESTS)
    stadtportal_test(NAME ${ARG_NAME}_test LABELS "unit;integration" SOURCES ${ARG_TESTS} ${migrations} DEPS ${ARG_NAME}_lib)
  endif()
endfunction()

# stadtportal_test(NAME <exe> LABELS <labels> SOURCES <files> DEPS <targets>
#                  [TIMEOUT <s>] [PER_FILE <lock>])
# PER_FILE: one CTest entry per *_test.cc (`<exe>.<file>`, Catch's filename tag), each
# with its own timeout; entries sharing <lock> never run at the same time.
function(stadtportal_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT;PER_FILE" "LABELS;SOURCES;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} stadtportal_test_main stadtportal_options)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  if(NOT ARG_PER_FILE)
    add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
    set_tests_properties(${ARG_NAME} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
    return()
  endif()
  foreach(source IN LISTS ARG_SOURCES)
    get_filename_component(file ${source} NAME_WE)
    if(file MATCHES "_test$")
      add_test(NAME ${ARG_NAME}.${file} COMMAND ${ARG_NAME} "-#" "[#${file}]")
      set_tests_properties(${ARG_NAME}.${file} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
                                                          RESOURCE_LOCK ${ARG_PER_FILE})
    endif()
  endforeach()
endfunction()
