#pragma once
// One option table per config file or option set (ccache's k_config_key_table): every key is
// declared once, with its parser, default, doc line and IDP_* environment alias, and the
// same parser reads it from a YAML file (errors at file:line:col), from a JSON object
// (driver options) and from the environment (errors naming the variable). No I/O.

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/expected.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::core {

// One problem in a config file, with its position (1-based; 0 when unknown).
struct ConfigError {
  std::string file;
  int line = 0;
  int column = 0;
  std::string key;     // dotted key, "" for document-level problems
  std::string message; // "expected a duration like 48h, got \"2 days\""

  // "file:line:col: key \"ttl\": expected …"
  std::string to_string() const;
};

// A node of a ConfigDocument: its value, and the names it is found and reported under.
struct ConfigNode {
  const nlohmann::json* value = nullptr;
  std::string path; // internal: the position lookup key (any bytes a key may hold)
  std::string key;  // as messages name it: "router.port", "repositories[0].url"
};

// A config document as JSON (every YAML scalar a string, null for an empty value), with
// where each key and value was, and the errors found so far (walkers add theirs).
class ConfigDocument {
public:
  // YAML text. What cannot be read is an error at its position and left out of the tree:
  // invalid YAML (then the tree is null), a key that is not a scalar, a duplicate key, a
  // key or value that is not valid UTF-8, a document nested too deeply or too large.
  static ConfigDocument from_yaml(std::string_view text, std::string file);
  // A JSON value without positions (driver options); `file` names it in messages.
  static ConfigDocument from_json(nlohmann::json value, std::string file);

  const std::string& file() const { return m_file; }
  ConfigNode root() const;
  // The member `name` of map node `parent` (value null when absent), and item `i` of a list.
  ConfigNode child(const ConfigNode& parent, const std::string& name) const;
  ConfigNode item(const ConfigNode& parent, size_t i) const;
  // The member names of map node `n` in the file's order (JSON keeps them sorted, so
  // messages would not read top to bottom otherwise); sorted names without positions.
  std::vector<std::string> members(const ConfigNode& n) const;
  // 1-based line and column of a node's value (or key); {0, 0} when unknown.
  std::pair<int, int> value_position(const ConfigNode& n) const;
  std::pair<int, int> key_position(const ConfigNode& n) const;

  // Records an error at the node's value (or key), under `key` (default: the node's key).
  void error_at_value(const ConfigNode& n, std::string message, std::optional<std::string> key = std::nullopt);
  void error_at_key(const ConfigNode& n, std::string message, std::optional<std::string> key = std::nullopt);
  void error(int line, int column, std::string key, std::string message);
  const std::vector<ConfigError>& errors() const { return m_errors; }
  // The errors in the file's order (by line and column; those without a position last).
  std::vector<ConfigError> sorted_errors() const;
  bool ok() const { return m_errors.empty(); }
  // True when the text was not YAML at all (nothing else is worth checking).
  bool unreadable() const { return m_unreadable; }

  struct Position {
    int key_line = 0;
    int key_column = 0;
    int value_line = 0;
    int value_column = 0;
  };

private:
  friend struct YamlConverter;
  std::string m_file;
  nlohmann::json m_root;
  std::map<std::string, Position> m_positions;
  std::vector<ConfigError> m_errors;
  bool m_unreadable = false;
};

// "a map", "a list", "nothing", "true", "42" or the quoted string: what was found.
std::string describe_config_value(const nlohmann::json& v);

// The result of parsing one value: nothing, or what was expected ("expected …, got …").
using OptionMessage = std::optional<std::string>;

// Value parsers shared by every table. A value from a file or the environment arrives as a
// string, one from a JSON object may be typed: each accepts both where that makes sense.
namespace option_values {
// A whole number within [min, max] (a JSON integer or decimal text, util::parse_int).
OptionMessage whole_number(const nlohmann::json& v, long long min, long long max, std::string_view what,
                           long long& out);
// whole_number into an integer field of any width (an int, a size_t, an int64_t): the one
// helper every table uses, so [min, max] is checked before the narrowing. [min, max] must
// fit in Field.
template <typename Field>
OptionMessage whole_number_into(const nlohmann::json& v, long long min, long long max, std::string_view what,
                                Field& out);
// true/yes/on or false/no/off (any case), or a JSON boolean.
OptionMessage boolean(const nlohmann::json& v, bool& out);
// A duration like 30s, 5m, 2h, 7d (core::parse_duration); `allow_zero` lets "0" switch a
// feature off. `what` is the example shown on error.
OptionMessage duration(const nlohmann::json& v, util::Millis& out, std::string_view what, bool allow_zero = false);
// Any scalar as text (a string, or a JSON number or boolean as written).
OptionMessage text(const nlohmann::json& v, std::string_view what, std::string& out);
// One string, or a list of strings.
OptionMessage string_list(const nlohmann::json& v, std::string_view what, std::vector<std::string>& out);
} // namespace option_values

// --- Interface ---

template <typename Field>
OptionMessage option_values::whole_number_into(const nlohmann::json& v, long long min, long long max,
                                               std::string_view what, Field& out) {
  static_assert(std::is_integral_v<Field> && !std::is_same_v<Field, bool>, "whole_number_into needs an integer field");
  long long n = 0;
  if (auto m = whole_number(v, min, max, what, n)) {
    return m;
  }
  out = static_cast<Field>(n);
  return std::nullopt;
}

// One key of a table.
template <typename T>
struct Option {
  std::string key;          // dotted: "router.port" is `port` inside the `router` map
  std::string env;          // the IDP_* environment alias, "" = none
  std::string default_text; // as documented
  std::string doc;          // one line: what it sets
  // Parses one value into the target: nothing on success, else "expected …, got …".
  std::function<OptionMessage(const nlohmann::json&, T&)> parse;
  // Instead of parse, for a value with parts (a map of entries, a list of maps): reports
  // its own errors, each at its part's position; false when it reported any.
  std::function<bool(ConfigDocument&, const ConfigNode&, T&)> parse_node;
  // An environment value is split into a list on this character first (':' for paths).
  char env_separator = 0;
};

// Where a table's values came from, for --show-config: key → "file.yml" | "env IDP_X".
using OptionOrigins = std::map<std::string, std::string>;

template <typename T>
class OptionTable {
public:
  // `unknown` names a key in messages: "key" for config files, "option" for driver options.
  explicit OptionTable(std::vector<Option<T>> options, std::string unknown = "key")
      : m_options(std::move(options)), m_unknown(std::move(unknown)) {}

  const std::vector<Option<T>>& options() const { return m_options; }
  const Option<T>* find(std::string_view key) const {
    for (const auto& o : m_options) {
      if (o.key == key) {
        return &o;
      }
    }
    return nullptr;
  }
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& o : m_options) {
      out.push_back(o.key);
    }
    return out;
  }

  // Applies every member of the map `node` to `target`: dotted keys are nested maps, an
  // empty value means the default, an unknown key is an error with "did you mean". Errors
  // go to `doc`; returns the keys applied without error, in the document's order.
  std::vector<std::string> apply(ConfigDocument& doc, const ConfigNode& node, T& target) const {
    std::vector<std::string> applied;
    apply_map(doc, node, "", target, applied);
    return applied;
  }

  // The environment aliases, read with `getenv` (nullopt or "" = unset), parsed by the
  // same parsers as the file's values. invalid_config "environment variable IDP_X: expected
  // …, got …" at the first bad value. Records "env IDP_X" in `origins` for each key set.
  Expected<void> apply_env(T& target, const std::function<std::optional<std::string>(const std::string&)>& getenv,
                           OptionOrigins& origins) const {
    for (const auto& o : m_options) {
      if (o.env.empty() || !o.parse) {
        continue;
      }
      auto text = getenv(o.env);
      if (!text || text->empty()) {
        continue;
      }
      nlohmann::json v = *text;
      if (o.env_separator != 0) {
        v = nlohmann::json::array();
        for (auto& part : util::split(*text, o.env_separator)) {
          if (!part.empty()) {
            v.push_back(part);
          }
        }
      }
      if (auto m = o.parse(v, target)) {
        return make_error(ErrorCode::invalid_config, "environment variable " + o.env + ": " + *m);
      }
      origins[o.key] = "env " + o.env;
    }
    return {};
  }

  // A JSON object of options (driver options): every default when null. invalid_config
  // naming `owner` and the option at the first error: `driver "local": option "k":
  // expected …, got …` or `driver "local": unknown option "k"; did you mean "h"?`.
  Expected<void> apply_json(const nlohmann::json& options, T& target, const std::string& owner) const {
    if (options.is_null()) {
      return {};
    }
    if (!options.is_object()) {
      return make_error(ErrorCode::invalid_config,
                        owner + ": expected an object of options, got " + describe_config_value(options));
    }
    ConfigDocument doc = ConfigDocument::from_json(options, owner);
    apply(doc, doc.root(), target);
    if (doc.ok()) {
      return {};
    }
    const ConfigError& e = doc.errors().front();
    std::string unknown = "unknown " + m_unknown;
    if (util::starts_with(e.message, unknown)) {
      std::string rest = e.message.substr(unknown.size()); // ", did you mean …?" or ""
      if (!rest.empty() && rest.front() == ',') {
        rest.front() = ';';
      }
      return make_error(ErrorCode::invalid_config, owner + ": " + unknown + " " + util::quote(e.key) + rest);
    }
    return make_error(ErrorCode::invalid_config,
                      owner + ": " + m_unknown + " " + util::quote(e.key) + ": " + e.message);
  }

private:
  // The names at the level below `prefix` ("" = top): "router" for "router.port".
  std::vector<std::string> names_under(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const auto& o : m_options) {
      if (!prefix.empty() && !util::starts_with(o.key, prefix + ".")) {
        continue;
      }
      std::string rest = prefix.empty() ? o.key : o.key.substr(prefix.size() + 1);
      out.push_back(rest.substr(0, rest.find('.')));
    }
    return out;
  }

  void apply_map(ConfigDocument& doc, const ConfigNode& node, const std::string& prefix, T& target,
                 std::vector<std::string>& applied) const {
    if (!node.value->is_object()) {
      doc.error_at_value(node, "expected a map of settings, got " + describe_config_value(*node.value));
      return;
    }
    std::vector<std::string> names = names_under(prefix);
    for (const std::string& name : doc.members(node)) {
      std::string full = prefix.empty() ? name : prefix + "." + name;
      ConfigNode child = doc.child(node, name);
      if (const Option<T>* o = find(full)) {
        if (child.value->is_null()) {
          continue; // an empty value means the default
        }
        bool ok = true;
        if (o->parse_node) {
          ok = o->parse_node(doc, child, target);
        } else if (auto m = o->parse(*child.value, target)) {
          doc.error_at_value(child, *m);
          ok = false;
        }
        if (ok) {
          applied.push_back(full);
        }
        continue;
      }
      if (std::find(names.begin(), names.end(), name) != names.end()) {
        if (!child.value->is_null()) {
          apply_map(doc, child, full, target, applied); // a section: router, local, ...
        }
        continue;
      }
      std::string hint = util::closest_match(name, names);
      std::string shown = node.key.empty() ? hint : node.key + "." + hint;
      doc.error_at_key(child,
                       "unknown " + m_unknown + (hint.empty() ? "" : ", did you mean " + util::quote(shown) + "?"));
    }
  }

  std::vector<Option<T>> m_options;
  std::string m_unknown;
};

} // namespace idp::core
