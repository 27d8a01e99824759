#include "core/command_line.hpp"

namespace idp::core {

Expected<std::vector<std::string>> split_command_line(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote == '\'') {
      if (c == '\'') {
        quote = 0;
      } else {
        cur += c;
      }
      continue;
    }
    if (quote == '"') {
      if (c == '"') {
        quote = 0;
      } else if (c == '\\' && i + 1 < text.size() && (text[i + 1] == '"' || text[i + 1] == '\\')) {
        cur += text[++i];
      } else {
        cur += c;
      }
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) {
        out.push_back(cur);
        cur.clear();
        in_word = false;
      }
      continue;
    }
    in_word = true;
    if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '\\' && i + 1 < text.size()) {
      cur += text[++i];
    } else {
      cur += c;
    }
  }
  if (quote != 0) {
    return make_error(ErrorCode::invalid_argument,
                      std::string("unterminated ") + (quote == '"' ? "double" : "single") + " quote in command");
  }
  if (in_word) {
    out.push_back(cur);
  }
  if (out.empty()) {
    return make_error(ErrorCode::invalid_argument, "empty command");
  }
  return out;
}

} // namespace idp::core
