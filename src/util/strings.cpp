#include "util/strings.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace idp::util {

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.emplace_back(s.substr(start));
      break;
    }
    out.emplace_back(s.substr(start, pos - start));
    start = pos + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) {
      out += sep;
    }
    out += parts[i];
  }
  return out;
}

std::string trim(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) {
    ++b;
  }
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) {
    --e;
  }
  return std::string(s.substr(b, e - b));
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1);
  std::vector<size_t> cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    prev[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = edit_distance(to_lower(word), to_lower(c));
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  // Accept up to a third of the word's length (at least 2) as a typo.
  size_t limit = std::max<size_t>(2, word.size() / 3);
  return best_d <= limit ? best : std::string();
}

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    default:
      if (c < 0x20 || c == 0x7f) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
    }
  }
  out += '"';
  return out;
}

std::string tail_lines(std::string_view text, size_t max_lines) {
  if (max_lines == 0) {
    return {};
  }
  size_t end = text.size();
  if (end > 0 && text[end - 1] == '\n') {
    --end;
  }
  size_t count = 0;
  size_t pos = end;
  while (pos > 0) {
    if (text[pos - 1] == '\n') {
      if (++count == max_lines) {
        break;
      }
    }
    --pos;
  }
  return std::string(text.substr(pos));
}

namespace {
bool glob_impl(std::string_view p, std::string_view t) {
  size_t pi = 0;
  size_t ti = 0;
  size_t star_p = std::string_view::npos;
  size_t star_t = 0;
  while (ti < t.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star_p = pi++;
      star_t = ti;
      continue;
    }
    if (pi < p.size() && p[pi] == '[') {
      size_t close = p.find(']', pi + 1);
      if (close != std::string_view::npos) {
        bool negate = pi + 1 < close && (p[pi + 1] == '!' || p[pi + 1] == '^');
        size_t k = pi + 1 + (negate ? 1 : 0);
        bool hit = false;
        for (; k < close; ++k) {
          if (k + 2 < close && p[k + 1] == '-') {
            hit = hit || (t[ti] >= p[k] && t[ti] <= p[k + 2]);
            k += 2;
          } else {
            hit = hit || t[ti] == p[k];
          }
        }
        if (hit != negate) {
          pi = close + 1;
          ++ti;
          continue;
        }
      }
    } else if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) {
      ++pi;
      ++ti;
      continue;
    }
    if (star_p != std::string_view::npos) {
      pi = star_p + 1;
      ti = ++star_t;
      continue;
    }
    return false;
  }
  while (pi < p.size() && p[pi] == '*') {
    ++pi;
  }
  return pi == p.size();
}
} // namespace

bool glob_match(std::string_view pattern, std::string_view text) { return glob_impl(pattern, text); }

std::string xml_unescape(std::string s) {
  static const std::vector<std::pair<std::string, std::string>> k_entities = {
      {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}, {"&amp;", "&"}};
  for (const auto& [from, to] : k_entities) {
    size_t p = 0;
    while ((p = s.find(from, p)) != std::string::npos) {
      s.replace(p, from.size(), to);
      p += to.size();
    }
  }
  return s;
}

std::string url_host_port(const std::string& base) {
  auto p = base.find("://");
  std::string rest = p == std::string::npos ? base : base.substr(p + 3);
  auto slash = rest.find('/');
  return slash == std::string::npos ? rest : rest.substr(0, slash);
}

} // namespace idp::util
