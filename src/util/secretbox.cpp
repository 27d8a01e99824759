#include "util/secretbox.hpp"

#include <algorithm>

#include <sodium.h>

namespace idp::util {

namespace {

// sodium_init is thread-safe and idempotent; it fails only when no randomness is available.
Expected<void> ensure_sodium() {
  static const int k_init = sodium_init();
  if (k_init < 0) {
    return make_error(ErrorCode::internal, "libsodium could not initialise (no source of randomness)");
  }
  return {};
}

} // namespace

Expected<std::string> derive_subkey(std::string_view master_key, std::string_view purpose, uint64_t id) {
  IDP_TRY(ensure_sodium());
  if (master_key.size() < crypto_kdf_KEYBYTES) {
    return make_error(ErrorCode::invalid_argument, "master key too short: expected at least 32 bytes");
  }
  if (purpose.size() != crypto_kdf_CONTEXTBYTES) {
    return make_error(ErrorCode::invalid_argument, "key purpose must be exactly 8 characters");
  }
  std::string out(k_secretbox_key_bytes, '\0');
  char ctx[crypto_kdf_CONTEXTBYTES];
  std::copy(purpose.begin(), purpose.end(), ctx);
  // Longer master keys are hashed down to the KDF's key size first.
  unsigned char mk[crypto_kdf_KEYBYTES];
  crypto_generichash(mk, sizeof mk, reinterpret_cast<const unsigned char*>(master_key.data()), master_key.size(),
                     nullptr, 0);
  crypto_kdf_derive_from_key(reinterpret_cast<unsigned char*>(out.data()), out.size(), id, ctx, mk);
  sodium_memzero(mk, sizeof mk);
  return out;
}

Expected<std::string> seal_secret(std::string_view key, std::string_view plaintext, std::string_view aad) {
  IDP_TRY(ensure_sodium());
  if (key.size() != crypto_aead_xchacha20poly1305_ietf_KEYBYTES) {
    return make_error(ErrorCode::invalid_argument, "secret key must be 32 bytes");
  }
  constexpr size_t k_nonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  std::string out(k_nonce + plaintext.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(o, k_nonce);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(o + k_nonce, &clen,
                                             reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
                                             reinterpret_cast<const unsigned char*>(aad.data()), aad.size(), nullptr, o,
                                             reinterpret_cast<const unsigned char*>(key.data()));
  out.resize(k_nonce + clen);
  return out;
}

Expected<std::string> open_secret(std::string_view key, std::string_view sealed, std::string_view aad) {
  IDP_TRY(ensure_sodium());
  if (key.size() != crypto_aead_xchacha20poly1305_ietf_KEYBYTES) {
    return make_error(ErrorCode::invalid_argument, "secret key must be 32 bytes");
  }
  constexpr size_t k_nonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  if (sealed.size() < k_nonce + crypto_aead_xchacha20poly1305_ietf_ABYTES) {
    return make_error(ErrorCode::permanent, "sealed secret is truncated");
  }
  const auto* s = reinterpret_cast<const unsigned char*>(sealed.data());
  std::string out(sealed.size() - k_nonce - crypto_aead_xchacha20poly1305_ietf_ABYTES, '\0');
  unsigned long long mlen = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(out.data()), &mlen, nullptr,
                                                 s + k_nonce, sealed.size() - k_nonce,
                                                 reinterpret_cast<const unsigned char*>(aad.data()), aad.size(), s,
                                                 reinterpret_cast<const unsigned char*>(key.data())) != 0) {
    return make_error(ErrorCode::permanent,
                      "sealed secret does not open: wrong key (was db/master.key replaced?) or altered data");
  }
  out.resize(mlen);
  return out;
}

} // namespace idp::util
