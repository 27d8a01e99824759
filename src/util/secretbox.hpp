#pragma once
// Authenticated encryption of small secrets at rest (libsodium XChaCha20-Poly1305).
// A sealed value is nonce (24 bytes) || ciphertext+tag, as raw bytes; `aad` binds it to
// where it is stored (a sealed value moved to another name does not open). Thread-safe.

#include <cstdint>
#include <string>
#include <string_view>

#include "util/expected.hpp"

namespace idp::util {

// Bytes of a secretbox key.
constexpr size_t k_secretbox_key_bytes = 32;

// A 32-byte subkey for `purpose` (exactly 8 characters, e.g. "secrets1") derived from a
// master key of at least 32 bytes (libsodium's KDF, BLAKE2b). invalid_argument otherwise.
Expected<std::string> derive_subkey(std::string_view master_key, std::string_view purpose, uint64_t id = 1);

// Encrypts `plaintext` under `key` (32 bytes) with a fresh random nonce.
Expected<std::string> seal_secret(std::string_view key, std::string_view plaintext, std::string_view aad);

// Decrypts what seal_secret made. permanent when the key, the aad or a byte is wrong (the
// message never holds the plaintext).
Expected<std::string> open_secret(std::string_view key, std::string_view sealed, std::string_view aad);

} // namespace idp::util
