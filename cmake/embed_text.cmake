# Writes OUT: a C++ source defining `extern const char SYMBOL[]` with the text of IN.
file(READ "${IN}" text)
string(REGEX MATCH "^(.*)::([^:]+)$" _ "${SYMBOL}")
set(ns "${CMAKE_MATCH_1}")
set(name "${CMAKE_MATCH_2}")
file(WRITE "${OUT}.tmp" "namespace ${ns} {\nextern const char ${name}[];\nconst char ${name}[] = R\"stadtportal_text(${text})stadtportal_text\";\n}  // namespace ${ns}\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
