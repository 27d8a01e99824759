#include "drivers/common/failure_cause.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>

namespace idp::drivers::common {

namespace {

constexpr size_t k_max_line = 300;

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

std::string_view ltrim(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) {
    ++i;
  }
  return s.substr(i);
}

// Without ANSI colour sequences and trailing blanks ("\r" of CRLF output included).
std::string clean(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\x1b' && i + 1 < s.size() && s[i + 1] == '[') {
      i += 2;
      while (i < s.size() && !(s[i] >= '@' && s[i] <= '~')) {
        ++i;
      }
      continue;
    }
    out.push_back(s[i]);
  }
  while (!out.empty() && std::isspace(static_cast<unsigned char>(out.back()))) {
    out.pop_back();
  }
  return out;
}

// npm prints its errors as "npm error <text>" (npm 10 and later) or "npm ERR! <text>":
// the text after the prefix, or nullopt for any other line.
std::optional<std::string_view> npm_text(std::string_view line) {
  for (std::string_view p : {std::string_view("npm error"), std::string_view("npm ERR!")}) {
    if (starts_with(line, p) && (line.size() == p.size() || line[p.size()] == ' ')) {
      return ltrim(line.substr(p.size()));
    }
  }
  return std::nullopt;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Lines that never say why: blank, stack frames, source carets, closing brackets of an
// error object dump, runtime banners, npm's metadata and its pointers to a debug log.
bool noise(std::string_view line) {
  std::string_view t = ltrim(line);
  if (t.empty()) {
    return true;
  }
  if ((t.size() < line.size() && starts_with(t, "at ")) || starts_with(t, "File \"")) {
    return true; // a JavaScript or Python stack frame
  }
  if (std::all_of(t.begin(), t.end(),
                  [](char c) { return std::string_view(" \t{}[]()^~|-=*,;").find(c) != std::string_view::npos; })) {
    return true;
  }
  if (starts_with(t, "Node.js v")) {
    return true;
  }
  if (auto rest = npm_text(line)) {
    if (rest->empty() || starts_with(*rest, "A complete log of this run") ||
        starts_with(*rest, "Log files were not written")) {
      return true;
    }
    static const std::array<std::string_view, 8> k_metadata = {"code", "errno",  "syscall", "path",
                                                               "dest", "signal", "cwd",     "command"};
    std::string_view word = rest->substr(0, rest->find(' '));
    return std::find(k_metadata.begin(), k_metadata.end(), word) != k_metadata.end();
  }
  return false;
}

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '$'; }

// A line that announces an error by its form: an npm error line, "Error: …", "TypeError: …",
// "java.lang.IllegalStateException: …", "error: …", "fatal: …", "panic: …", or a compiler's
// "file:3:1: error: …" / "file(3,7): error TS…".
bool strong(std::string_view line) {
  if (npm_text(line)) {
    return true;
  }
  std::string_view t = ltrim(line);
  if (starts_with(t, "Uncaught ")) {
    t = t.substr(9);
  }
  size_t w = 0;
  while (w < t.size() && is_word_char(t[w])) {
    ++w;
  }
  std::string_view word = t.substr(0, w);
  bool end_ok = w == t.size() || t[w] == ':' || t[w] == ' ' || t[w] == '[' || t[w] == '!';
  auto ends_with = [&](std::string_view s) {
    return word.size() >= s.size() && word.substr(word.size() - s.size()) == s;
  };
  if (end_ok && (ends_with("Error") || ends_with("Exception"))) {
    return true;
  }
  std::string lw = lower(word);
  if (end_ok && (lw == "error" || lw == "fatal" || lw == "panic" || lw == "err!")) {
    return true;
  }
  std::string l = lower(line);
  return l.find(": error") != std::string::npos || l.find(": fatal error") != std::string::npos;
}

// A line that mentions a failure anywhere.
bool weak(std::string_view line) {
  static const std::array<std::string_view, 20> k_words = {
      "error",    "failed",    "failure",   "fatal",     "cannot", "can't",   "could not",
      "couldn't", "unable to", "not found", "no such",   "denied", "refused", "invalid",
      "missing",  "exception", "killed",    "timed out", "panic",  "abort"};
  std::string l = lower(line);
  return std::any_of(k_words.begin(), k_words.end(),
                     [&](std::string_view w) { return l.find(w) != std::string::npos; });
}

// At most k_max_line bytes, not cutting a UTF-8 sequence.
std::string bounded(std::string s) {
  if (s.size() <= k_max_line) {
    return s;
  }
  size_t n = k_max_line;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) {
    --n;
  }
  s.resize(n);
  return s + "…";
}

} // namespace

std::vector<std::string> pick_cause_lines(const std::vector<std::string>& output, size_t max_lines) {
  std::vector<std::string> lines;
  lines.reserve(output.size());
  for (const auto& l : output) {
    lines.push_back(clean(l));
  }
  std::vector<std::string> out;
  if (max_lines == 0) {
    return out;
  }
  std::optional<size_t> first;
  for (size_t i = 0; i < lines.size() && !first; ++i) {
    if (!noise(lines[i]) && strong(lines[i])) {
      first = i;
    }
  }
  for (size_t i = 0; i < lines.size() && !first; ++i) {
    if (!noise(lines[i]) && weak(lines[i])) {
      first = i;
    }
  }
  if (!first) {
    // Nothing looks like an error: what the command printed last is the best guess.
    for (size_t i = lines.size(); i-- > 0 && out.size() < max_lines;) {
      if (!noise(lines[i])) {
        out.push_back(bounded(lines[i]));
      }
    }
    std::reverse(out.begin(), out.end());
    return out;
  }
  std::string cause = lines[*first];
  size_t end = *first + 1;
  if (npm_text(lines[*first])) {
    // npm wraps one message over several "npm error" lines; a blank one ends it.
    for (int joined = 0; end < lines.size() && joined < 3; ++end, ++joined) {
      auto rest = npm_text(lines[end]);
      if (!rest || noise(lines[end])) {
        break;
      }
      cause += " " + std::string(*rest);
    }
  }
  out.push_back(bounded(cause));
  // The last meaningful line, when it also says something failed (and is not npm's
  // closing advice, which always follows its error block).
  for (size_t i = lines.size(); i-- > end;) {
    if (noise(lines[i]) || npm_text(lines[i])) {
      continue;
    }
    if ((strong(lines[i]) || weak(lines[i])) && lines[i] != lines[*first] && out.size() < max_lines) {
      out.push_back(bounded(lines[i]));
    }
    break;
  }
  return out;
}

std::string with_cause(std::string_view head, const std::vector<std::string>& cause) {
  std::string out(head);
  for (size_t i = 0; i < cause.size(); ++i) {
    out += (i == 0 ? ": " : "\n") + cause[i];
  }
  return out;
}

} // namespace idp::drivers::common
