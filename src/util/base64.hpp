#pragma once
// Base64 (RFC 4648, standard alphabet, padded): bytes inside JSON (idp exec's frames).

#include <optional>
#include <string>
#include <string_view>

namespace idp::util {

std::string base64_encode(std::string_view bytes);
// nullopt when `text` is not padded standard base64 (whitespace is not accepted either).
std::optional<std::string> base64_decode(std::string_view text);

} // namespace idp::util
