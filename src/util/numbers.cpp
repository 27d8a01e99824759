#include "util/numbers.hpp"

#include "util/strings.hpp"

namespace idp::util::detail {

Error number_error(std::string_view text, std::string_view min, std::string_view max) {
  // A long value is cut so that a pasted blob does not flood the message.
  // The cut backs off to a UTF-8 lead byte: the message may end up in JSON.
  constexpr size_t k_shown = 40;
  size_t cut = text.size();
  if (cut > k_shown) {
    cut = k_shown;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
      --cut;
    }
  }
  return Error(ErrorCode::invalid_argument, "expected a whole number from " + std::string(min) + " to " +
                                                std::string(max) + ", got " + quote(text.substr(0, cut)) +
                                                (cut < text.size() ? "…" : ""));
}

} // namespace idp::util::detail
