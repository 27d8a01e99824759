#pragma once
// Hashing (OpenSSL): SHA-256, HMAC-SHA256, constant-time compare, random tokens.

#include <optional>
#include <string>
#include <string_view>

namespace idp::util {

std::string sha256_hex(std::string_view data);
// Raw 32-byte digest.
std::string sha256_raw(std::string_view data);
// Raw 32-byte HMAC-SHA256 of `data` under `key`.
std::string hmac_sha256_raw(std::string_view key, std::string_view data);
std::string to_hex(std::string_view raw);
// The value of one hex digit (either case), -1 for any other character.
int hex_digit_value(char c);
// The bytes of an even-length string of hex digits; nullopt when it is not one.
std::optional<std::string> from_hex(std::string_view hex);
// Compare two strings in time independent of where they differ.
bool constant_time_equals(std::string_view a, std::string_view b);
// `bytes` cryptographically random bytes, hex-encoded (2*bytes chars).
std::string random_hex(size_t bytes);
// Random password of `length` chars from [A-Za-z0-9].
std::string random_password(size_t length);

} // namespace idp::util
