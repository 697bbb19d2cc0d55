#pragma once

#include <string>

namespace stadtportal::api {

// The media type of a file decided from its first bytes (magic numbers), never from its
// name: application/pdf, image/png or image/jpeg; "" for anything else.
std::string SniffMediaType(const std::string& content);

// A file name safe to store and to send back in Content-Disposition: the last path
// segment, control characters, quotes and separators replaced, at most 120 characters.
std::string SafeFilename(const std::string& name);

}  // namespace stadtportal::api
