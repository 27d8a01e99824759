#pragma once
// Redaction of secret values from text (logs, errors, exec output): every occurrence of a
// value becomes "***". Values shorter than k_min_redacted_length are left alone: redacting
// "1" or "yes" would destroy the output and protect nothing worth it (docs/security.md).

#include <string>
#include <string_view>
#include <vector>

namespace idp::util {

constexpr size_t k_min_redacted_length = 4;
constexpr std::string_view k_redacted = "***";

class Redactor {
public:
  Redactor() = default;
  // Keeps the values of at least k_min_redacted_length bytes, longest first (so a value
  // that contains another is replaced whole).
  explicit Redactor(std::vector<std::string> values);
  bool empty() const { return m_values.empty(); }
  // `text` with every occurrence of every value replaced by "***".
  std::string redact(std::string_view text) const;
  // The length of the longest tail of `text` that is the start of some value (0 if none):
  // what a stream must hold back until more arrives.
  size_t partial_tail(std::string_view text) const;

private:
  std::vector<std::string> m_values;
};

// Redacts a stream that arrives in chunks: a value split across two chunks is still
// replaced, because a tail that could start a value is held back until the next chunk or
// flush(). Not thread-safe (one per stream).
class StreamRedactor {
public:
  explicit StreamRedactor(const Redactor& r) : m_redactor(r) {}
  // What can be passed on now.
  std::string feed(std::string_view chunk);
  // Everything held back (end of stream, or a quiet moment: an interactive prompt must
  // show). A value split across a flush is not caught.
  std::string flush();

private:
  const Redactor& m_redactor;
  std::string m_pending;
};

} // namespace idp::util
