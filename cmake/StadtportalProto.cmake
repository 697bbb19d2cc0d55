# stadtportal_proto_library(NAME <target> PROTOS <files relative to proto/> [DEPS <targets>] [GRPC])
# Generates C++ (and gRPC stubs with GRPC) into the build tree; never committed.
function(stadtportal_proto_library)
  cmake_parse_arguments(ARG "GRPC" "NAME" "PROTOS;DEPS" ${ARGN})
  set(proto_root "${PROJECT_SOURCE_DIR}/proto")
  set(out "${PROJECT_BINARY_DIR}/gen")
  file(MAKE_DIRECTORY "${out}")
  set(srcs)
  foreach(rel IN LISTS ARG_PROTOS)
    get_filename_component(dir "${rel}" DIRECTORY)
    get_filename_component(stem "${rel}" NAME_WE)
    set(generated "${out}/${dir}/${stem}.pb.cc" "${out}/${dir}/${stem}.pb.h")
    set(cmd_args --proto_path=${proto_root} --cpp_out=${out})
    if(ARG_GRPC)
      list(APPEND generated "${out}/${dir}/${stem}.grpc.pb.cc" "${out}/${dir}/${stem}.grpc.pb.h")
      list(APPEND cmd_args --grpc_out=${out} --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>)
    endif()
    add_custom_command(
      OUTPUT ${generated}
      COMMAND protobuf::protoc ${cmd_args} "${proto_root}/${rel}"
      DEPENDS "${proto_root}/${rel}" protobuf::protoc
      COMMENT "protoc ${rel}"
      VERBATIM)
    list(APPEND srcs ${generated})
  endforeach()
  add_library(${ARG_NAME} STATIC ${srcs})
  target_include_directories(${ARG_NAME} PUBLIC "${out}")
  target_link_libraries(${ARG_NAME} PUBLIC protobuf::libprotobuf ${ARG_DEPS} PRIVATE stadtportal_generated_options)
  if(ARG_GRPC)
    target_link_libraries(${ARG_NAME} PUBLIC gRPC::grpc++)
  endif()
endfunction()
