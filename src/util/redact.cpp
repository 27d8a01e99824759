#include "util/redact.hpp"

#include <algorithm>

namespace idp::util {

Redactor::Redactor(std::vector<std::string> values) {
  for (auto& v : values) {
    if (v.size() >= k_min_redacted_length) {
      m_values.push_back(std::move(v));
    }
  }
  std::sort(m_values.begin(), m_values.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() > b.size() : a < b;
  });
  m_values.erase(std::unique(m_values.begin(), m_values.end()), m_values.end());
}

std::string Redactor::redact(std::string_view text) const {
  if (m_values.empty()) {
    return std::string(text);
  }
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    bool hit = false;
    for (const auto& v : m_values) {
      if (text.compare(i, v.size(), v) == 0) {
        out += k_redacted;
        i += v.size();
        hit = true;
        break;
      }
    }
    if (!hit) {
      out += text[i++];
    }
  }
  return out;
}

size_t Redactor::partial_tail(std::string_view text) const {
  size_t best = 0;
  for (const auto& v : m_values) {
    size_t max = std::min(v.size() - 1, text.size());
    for (size_t k = max; k > best; --k) {
      if (text.compare(text.size() - k, k, v, 0, k) == 0) {
        best = k;
        break;
      }
    }
  }
  return best;
}

std::string StreamRedactor::feed(std::string_view chunk) {
  m_pending.append(chunk);
  std::string out = m_redactor.redact(m_pending);
  size_t keep = m_redactor.partial_tail(out);
  m_pending = out.substr(out.size() - keep);
  out.resize(out.size() - keep);
  return out;
}

std::string StreamRedactor::flush() {
  std::string out = std::move(m_pending);
  m_pending.clear();
  return out;
}

} // namespace idp::util
