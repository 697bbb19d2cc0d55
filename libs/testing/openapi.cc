#include "libs/testing/openapi.h"

#include <cctype>
#include <fstream>
#include <regex>
#include <stdexcept>

namespace stadtportal::testing {

std::vector<std::string> OpenApiOperations(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<std::string> out;
  std::string line, current;
  bool in_paths = false;
  const std::regex path_line(R"(^  (/[^:]*):\s*$)");
  const std::regex method_line(R"(^    (get|post|put|patch|delete):\s*$)");
  std::smatch m;
  while (std::getline(in, line)) {
    if (line == "paths:") {
      in_paths = true;
    } else if (!line.empty() && line[0] != ' ') {
      in_paths = false;
    }
    if (!in_paths) continue;
    if (std::regex_match(line, m, path_line)) {
      current = m[1].str();
    } else if (std::regex_match(line, m, method_line)) {
      std::string method = m[1].str();
      for (auto& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      out.push_back(method + " " + current);
    }
  }
  return out;
}

}  // namespace stadtportal::testing
