#include "cli/output/table.hpp"

#include <cstdlib>
#include <unistd.h>

#include "util/json.hpp"
#include "util/time.hpp"

namespace idp::cli::output {

bool stdout_is_tty() { return ::isatty(STDOUT_FILENO) == 1; }

bool use_color() {
  const char* nc = std::getenv("NO_COLOR");
  return stdout_is_tty() && !(nc && *nc);
}

std::string color(const std::string& text, const std::string& which) {
  if (!use_color() || which.empty()) {
    return text;
  }
  const char* code = which == "green"    ? "32"
                     : which == "yellow" ? "33"
                     : which == "red"    ? "31"
                     : which == "gray"   ? "90"
                     : which == "bold"   ? "1"
                     : which == "cyan"   ? "36"
                                         : "0";
  return std::string("\033[") + code + "m" + text + "\033[0m";
}

std::string phase_color(const std::string& phase) {
  if (phase == "ready") {
    return "green";
  }
  if (phase == "pending" || phase == "provisioning" || phase == "updating") {
    return "yellow";
  }
  if (phase == "failed" || phase == "destroying" || phase == "degraded") {
    return "red";
  }
  return "gray";
}

// Display width of UTF-8 text (code points; good enough for names and URLs).
static size_t width(const std::string& s) {
  size_t w = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) {
      ++w;
    }
  }
  return w;
}

std::string Table::render() const {
  std::vector<size_t> widths(headers.size(), 0);
  for (size_t i = 0; i < headers.size(); ++i) {
    widths[i] = width(headers[i]);
  }
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], width(r[i]));
    }
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells, const std::vector<std::string>* cols, bool header) {
    std::string l;
    for (size_t i = 0; i < cells.size() && i < widths.size(); ++i) {
      std::string cell = cells[i];
      std::string pad(widths[i] - width(cell), ' ');
      std::string c = header ? "bold" : (cols && i < cols->size() ? (*cols)[i] : "");
      bool last = i + 1 == cells.size();
      l += color(cell, c) + (last ? "" : pad + "  ");
    }
    out += l + "\n";
  };
  line(headers, nullptr, true);
  for (size_t r = 0; r < rows.size(); ++r) {
    line(rows[r], r < colors.size() ? &colors[r] : nullptr, false);
  }
  return out;
}

std::string relative_time(const nlohmann::json& iso, long long now_ms) {
  if (!iso.is_string()) {
    return "-";
  }
  auto t = util::parse_iso8601(iso.get<std::string>());
  if (!t) {
    return iso.get<std::string>();
  }
  long long d = *t - now_ms;
  return d >= 0 ? "in " + util::format_duration(d) : util::format_duration(-d) + " ago";
}

std::string field(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j.at(key).is_null()) {
    return "-";
  }
  if (j.at(key).is_string()) {
    std::string s = j.at(key).get<std::string>();
    return s.empty() ? "-" : s;
  }
  return util::json_dump(j.at(key));
}

std::string one_line(const std::string& text) {
  size_t nl = text.find('\n');
  if (nl == std::string::npos) {
    return text;
  }
  std::string first = text.substr(0, nl);
  while (!first.empty() && (first.back() == ' ' || first.back() == '\r')) {
    first.pop_back();
  }
  return first + " …";
}

std::string indent_rest(const std::string& text, size_t indent) {
  std::string out;
  for (char c : text) {
    out += c;
    if (c == '\n') {
      out.append(indent, ' ');
    }
  }
  return out;
}

} // namespace idp::cli::output
