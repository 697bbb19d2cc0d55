#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stadtportal/submission/v1/submission.pb.h"

namespace stadtportal::submission {

// The lines of a receipt in `language` ("de"/"en"): reference, date, service, every
// answer under its label, attachments with their SHA-256, the fee.
std::vector<std::string> ReceiptLines(const v1::Submission& s, const nlohmann::json& definition,
                                      const std::string& language);

// A PDF 1.4 document (Helvetica, WinAnsiEncoding) with the lines, wrapped and paged.
// UTF-8 text outside Windows-1252 is shown as '?'.
std::string RenderPdf(const std::string& title, const std::vector<std::string>& lines);

}  // namespace stadtportal::submission
