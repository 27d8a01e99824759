#pragma once
// Human output: aligned tables (widths from the content, so colours never misalign
// columns) and colours only on a terminal (and never with NO_COLOR).

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace idp::cli::output {

bool stdout_is_tty();
bool use_color();

// Wraps text in an ANSI colour when use_color(); "green", "yellow", "red", "gray", "bold".
std::string color(const std::string& text, const std::string& which);
// The colour a phase is shown in.
std::string phase_color(const std::string& phase);

struct Table {
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;
  // Cell colours (same shape as rows; "" = none). Optional.
  std::vector<std::vector<std::string>> colors;
  std::string render() const;
};

// "in 6d 23h" / "3h ago" relative to now for an ISO time (or "-" for null).
std::string relative_time(const nlohmann::json& iso, long long now_ms);
// A JSON string field or "-" when null/missing/empty.
std::string field(const nlohmann::json& j, const char* key);
// The first line of a (reason) text, with " …" when more lines follow: a table cell holds
// one line; `idp status` shows the whole text.
std::string one_line(const std::string& text);
// `text` with every line after the first indented by `indent` spaces (a value in a
// "key: value" listing that spans lines).
std::string indent_rest(const std::string& text, size_t indent);

} // namespace idp::cli::output
