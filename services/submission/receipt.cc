#include "services/submission/receipt.h"

#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace stadtportal::submission {
namespace {

// UTF-8 → Windows-1252 (the encoding of the standard PDF fonts).
std::string ToWinAnsi(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    uint32_t cp = 0;
    int len = 1;
    if (c < 0x80) {
      cp = c;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < s.size()) {
      cp = ((c & 0x1F) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3F);
      len = 2;
    } else if ((c & 0xF0) == 0xE0 && i + 2 < s.size()) {
      cp = ((c & 0x0F) << 12) | ((static_cast<unsigned char>(s[i + 1]) & 0x3F) << 6) |
           (static_cast<unsigned char>(s[i + 2]) & 0x3F);
      len = 3;
    } else {
      cp = '?';
      len = (c & 0xF8) == 0xF0 ? 4 : 1;
    }
    i += len;
    if (cp == 0x20AC) {
      out += '\x80';  // €
    } else if (cp == 0x2013 || cp == 0x2014) {
      out += '-';
    } else if (cp >= 0x20 && cp < 0x7F) {
      out += static_cast<char>(cp);
    } else if (cp >= 0xA0 && cp <= 0xFF) {
      out += static_cast<char>(cp);
    } else {
      out += '?';
    }
  }
  return out;
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '(' || c == ')' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// Splits a Windows-1252 line at spaces so it fits `width` characters.
std::vector<std::string> Wrap(const std::string& line, size_t width) {
  std::vector<std::string> out;
  std::string rest = line;
  while (rest.size() > width) {
    size_t cut = rest.rfind(' ', width);
    if (cut == std::string::npos || cut == 0) cut = width;
    out.push_back(rest.substr(0, cut));
    rest = rest.substr(cut == width ? cut : cut + 1);
    rest = "    " + rest;
  }
  out.push_back(rest);
  return out;
}

std::string Label(const nlohmann::json& j, const std::string& lang) {
  return j.is_object() && j.contains(lang) ? j[lang].get<std::string>() : "";
}

std::string Answer(const nlohmann::json& field, const nlohmann::json& v, const std::string& lang) {
  const bool de = lang == "de";
  if (v.is_boolean()) return v.get<bool>() ? (de ? "ja" : "yes") : (de ? "nein" : "no");
  auto option_label = [&](const std::string& value) {
    for (const auto& o : field.value("options", nlohmann::json::array())) {
      if (o["value"] == value) return Label(o["label"], lang);
    }
    return value;
  };
  if (v.is_string()) return field.contains("options") ? option_label(v) : v.get<std::string>();
  if (v.is_array()) {
    std::vector<std::string> parts;
    for (const auto& e : v) parts.push_back(e.is_string() ? option_label(e) : e.dump());
    return absl::StrJoin(parts, ", ");
  }
  if (v.is_object()) {
    return absl::StrCat(v.value("street", ""), " ", v.value("house_number", ""), ", ", v.value("postcode", ""), " ",
                        v.value("city", ""));
  }
  return v.dump();
}

std::string Money(int64_t minor, const std::string& currency, bool de) {
  std::string amount = absl::StrFormat("%d%s%02d", minor / 100, de ? "," : ".", minor % 100);
  return currency == "EUR" ? absl::StrCat(amount, " €") : absl::StrCat(amount, " ", currency);
}

}  // namespace

std::vector<std::string> ReceiptLines(const v1::Submission& s, const nlohmann::json& definition,
                                      const std::string& language) {
  const bool de = language == "de";
  const std::string lang = de ? "de" : "en";
  const absl::Time at =
      absl::FromUnixMicros(google::protobuf::util::TimeUtil::TimestampToMicroseconds(s.submitted_at()));
  static const absl::TimeZone kBerlin = [] {
    absl::TimeZone tz;
    return absl::LoadTimeZone("Europe/Berlin", &tz) ? tz : absl::UTCTimeZone();
  }();
  std::vector<std::string> lines = {
      absl::StrCat(de ? "Aktenzeichen: " : "Reference: ", s.reference()),
      absl::StrCat(de ? "Eingegangen am: " : "Submitted on: ",
                   absl::FormatTime(de ? "%d.%m.%Y %H:%M" : "%Y-%m-%d %H:%M", at, kBerlin)),
      absl::StrCat(de ? "Leistung: " : "Service: ", de ? s.service_name().de() : s.service_name().en()),
      absl::StrCat(de ? "Zuständig: " : "Responsible: ", definition.value("department", "")),
      "",
      de ? "Ihre Angaben" : "Your answers",
  };
  const auto data = nlohmann::json::parse(s.data_json(), nullptr, false);
  for (const auto& step : definition["form"]["steps"]) {
    for (const auto& field : step["fields"]) {
      const std::string id = field["id"];
      if (data.is_object() && data.contains(id)) {
        lines.push_back(absl::StrCat("  ", Label(field["label"], lang), ": ", Answer(field, data[id], lang)));
      }
    }
  }
  if (s.attachments_size() > 0) {
    lines.push_back("");
    lines.push_back(de ? "Anlagen" : "Attachments");
    for (const auto& a : s.attachments()) {
      lines.push_back(absl::StrCat("  ", a.filename(), " (", a.size(), " Bytes, SHA-256 ", a.sha256(), ")"));
    }
  }
  lines.push_back("");
  lines.push_back(absl::StrCat(de ? "Gebühr: " : "Fee: ", Money(s.fee().amount_minor(), s.fee().currency(), de)));
  return lines;
}

std::string RenderPdf(const std::string& title, const std::vector<std::string>& lines) {
  constexpr size_t kWidth = 95;  // Characters per line at 10 pt Helvetica on A4.
  constexpr size_t kLinesPerPage = 60;
  std::vector<std::string> wrapped;
  for (const auto& l : lines) {
    for (auto& w : Wrap(ToWinAnsi(l), kWidth)) wrapped.push_back(std::move(w));
  }
  std::vector<std::string> pages;
  for (size_t i = 0; i < wrapped.size() || pages.empty(); i += kLinesPerPage) {
    std::string content = "BT\n/F1 14 Tf\n50 790 Td\n(" + Escape(ToWinAnsi(title)) + ") Tj\n/F1 10 Tf\n0 -28 Td\n";
    for (size_t j = i; j < std::min(wrapped.size(), i + kLinesPerPage); ++j) {
      content += "(" + Escape(wrapped[j]) + ") Tj\n0 -12 Td\n";
    }
    content += "ET\n";
    pages.push_back(std::move(content));
  }

  // Objects: 1 catalog, 2 pages, 3 font, then per page: page object, content stream.
  std::vector<std::string> objects;
  objects.push_back("<< /Type /Catalog /Pages 2 0 R >>");
  std::string kids;
  for (size_t p = 0; p < pages.size(); ++p) kids += absl::StrCat(4 + 2 * p, " 0 R ");
  objects.push_back(absl::StrCat("<< /Type /Pages /Kids [", kids, "] /Count ", pages.size(), " >>"));
  objects.push_back("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>");
  for (size_t p = 0; p < pages.size(); ++p) {
    objects.push_back(
        absl::StrCat("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R ",
                     ">> >> /Contents ", 5 + 2 * p, " 0 R >>"));
    objects.push_back(absl::StrCat("<< /Length ", pages[p].size(), " >>\nstream\n", pages[p], "endstream"));
  }
  std::string pdf = "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n";
  std::vector<size_t> offsets;
  for (size_t i = 0; i < objects.size(); ++i) {
    offsets.push_back(pdf.size());
    pdf += absl::StrCat(i + 1, " 0 obj\n", objects[i], "\nendobj\n");
  }
  const size_t xref = pdf.size();
  pdf += absl::StrCat("xref\n0 ", objects.size() + 1, "\n0000000000 65535 f \n");
  for (size_t off : offsets) pdf += absl::StrFormat("%010d 00000 n \n", off);
  pdf += absl::StrCat("trailer\n<< /Size ", objects.size() + 1, " /Root 1 0 R >>\nstartxref\n", xref, "\n%%EOF\n");
  return pdf;
}

}  // namespace stadtportal::submission
