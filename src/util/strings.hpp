#pragma once
// Small string helpers with no idp types.

#include <string>
#include <string_view>
#include <vector>

namespace idp::util {

std::vector<std::string> split(std::string_view s, char sep);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
std::string trim(std::string_view s);
std::string to_lower(std::string_view s);
bool starts_with(std::string_view s, std::string_view prefix);
bool ends_with(std::string_view s, std::string_view suffix);

// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word` if it is close enough to be a likely typo, else "".
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

// Quote a value for a user message: "value" with control characters escaped.
std::string quote(std::string_view s);

// The last `max_lines` lines of `text` (all of it if shorter).
std::string tail_lines(std::string_view text, size_t max_lines);

// The first `len` characters of a commit id, as people write them ("3f2a9c1").
inline std::string short_commit(std::string_view commit, size_t len = 7) { return std::string(commit.substr(0, len)); }

// Glob match with `*` (any run, including `/`), `?` (one char) and `[...]` classes.
bool glob_match(std::string_view pattern, std::string_view text);

// XML text with the five predefined entities (&lt; &gt; &quot; &apos; &amp;) decoded.
std::string xml_unescape(std::string s);

// host[:port] of a base URL "scheme://host[:port][/path]".
std::string url_host_port(const std::string& base);

} // namespace idp::util
