#pragma once
// The one JSON serialiser, and the UTF-8 checks behind it. Text from outside (branch names,
// commit messages, logs, payloads) may be any bytes; JSON text must be UTF-8. Every JSON
// document idp writes (API bodies, files, store settings, CLI output) goes through
// json_dump, which turns each invalid UTF-8 sequence into U+FFFD instead of throwing.

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace idp::util {

// `j` as JSON text; indent < 0 = compact, else pretty with that many spaces. Invalid UTF-8
// in strings (and keys) becomes U+FFFD. Never throws.
std::string json_dump(const nlohmann::json& j, int indent = -1);

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF): exactly the strings json_dump writes unchanged.
bool is_valid_utf8(std::string_view s);

// `s` with every byte that is not part of a well-formed UTF-8 sequence written as "\xNN"
// (two lowercase hex digits); valid text is unchanged. For messages that show bytes.
std::string escape_invalid_utf8(std::string_view s);

} // namespace idp::util
