#include "core/option_table.hpp"

#include <algorithm>
#include <climits>
#include <set>

#include <yaml-cpp/yaml.h>

#include "core/ttl.hpp"
#include "util/json.hpp"
#include "util/numbers.hpp"

namespace idp::core {

using nlohmann::json;
using util::quote;

namespace {

// Internal paths: members and items joined by separators no message shows, so a key may
// hold any bytes (a '.' in a secret's name, "[0]" in a map key) without two paths meeting.
constexpr char k_member_sep = '\x1f';
constexpr char k_item_sep = '\x1e';

const json& null_json() {
  static const json k_null;
  return k_null;
}

} // namespace

std::string ConfigError::to_string() const {
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line) + ":" + std::to_string(column);
  }
  out += ": ";
  if (!key.empty()) {
    out += "key " + quote(key) + ": ";
  }
  out += message;
  return out;
}

std::string describe_config_value(const json& v) {
  if (v.is_object()) {
    return "a map";
  }
  if (v.is_array()) {
    return "a list";
  }
  if (v.is_null()) {
    return "nothing";
  }
  if (v.is_string()) {
    return quote(v.get<std::string>());
  }
  return util::json_dump(v);
}

// --- YAML → JSON with positions ---

struct YamlConverter {
  // Bounds: an alias is expanded where it is used, so a few lines of anchors could ask for
  // millions of values (the "billion laughs"); a config file has a few hundred.
  static constexpr size_t k_max_values = 100000;
  static constexpr int k_max_depth = 64;

  ConfigDocument& doc;
  size_t values = 0;
  bool too_large = false;

  static std::pair<int, int> position(const YAML::Mark& m) {
    return {m.line >= 0 ? m.line + 1 : 0, m.column >= 0 ? m.column + 1 : 0};
  }

  void error_at(const YAML::Mark& m, const std::string& key, std::string message) {
    auto [line, column] = position(m);
    doc.error(line, column, key, std::move(message));
  }

  // Converts `n` into `out`; false when it must be left out (the reason is reported).
  bool convert(const YAML::Node& n, json& out, const std::string& path, const std::string& key, int depth) {
    if (++values > k_max_values) {
      if (!too_large) {
        too_large = true;
        error_at(n.Mark(), key, "the document is too large (more than " + std::to_string(k_max_values) + " values)");
      }
      return false;
    }
    if (depth > k_max_depth) {
      error_at(n.Mark(), key, "nested more than " + std::to_string(k_max_depth) + " levels deep");
      return false;
    }
    if (n.IsNull() || !n.IsDefined()) {
      out = nullptr;
      return true;
    }
    if (n.IsScalar()) {
      const std::string& s = n.Scalar();
      if (!util::is_valid_utf8(s)) {
        // Not echoed: the value may be a secret. yaml-cpp passes any bytes through, and
        // JSON (the store, the API, --show-config) needs UTF-8 (fuzz/RESULTS.md finding 1).
        error_at(n.Mark(), key, "the value is not valid UTF-8");
        return false;
      }
      out = s;
      return true;
    }
    if (n.IsSequence()) {
      out = json::array();
      bool ok = true;
      size_t i = 0;
      for (const auto& item : n) {
        std::string item_path = path + k_item_sep + std::to_string(i);
        auto [line, column] = position(item.Mark());
        doc.m_positions[item_path] = {line, column, line, column};
        json v;
        // One item left out would shift the others' positions: the whole list is.
        ok = convert(item, v, item_path, key + "[" + std::to_string(i) + "]", depth + 1) && ok;
        out.push_back(std::move(v));
        ++i;
      }
      return ok;
    }
    if (!n.IsMap()) {
      return true;
    }
    out = json::object();
    std::set<std::string> seen;
    for (const auto& kv : n) {
      const YAML::Node& k = kv.first;
      if (!k.IsScalar()) {
        error_at(k.Mark(), key,
                 "expected a key name, got " + std::string(k.IsMap()        ? "a map"
                                                           : k.IsSequence() ? "a list"
                                                                            : "nothing"));
        continue;
      }
      const std::string& name = k.Scalar();
      if (!util::is_valid_utf8(name)) {
        // Shown with its bad bytes as \xNN (a message must be UTF-8 itself), not quoted
        // again: quote() would double each backslash.
        error_at(k.Mark(), key, "the key \"" + util::escape_invalid_utf8(name) + "\" is not valid UTF-8");
        continue;
      }
      std::string child_key = key.empty() ? name : key + "." + name;
      if (!seen.insert(name).second) {
        error_at(k.Mark(), child_key, "duplicate key");
        continue;
      }
      std::string child_path = path + k_member_sep + name;
      auto [kline, kcolumn] = position(k.Mark());
      auto [vline, vcolumn] = position(kv.second.Mark());
      if (vline == 0) { // an empty value has no mark of its own
        vline = kline;
        vcolumn = kcolumn;
      }
      doc.m_positions[child_path] = {kline, kcolumn, vline, vcolumn};
      json v;
      if (convert(kv.second, v, child_path, child_key, depth + 1)) {
        out[name] = std::move(v);
      }
    }
    return true;
  }
};

ConfigDocument ConfigDocument::from_yaml(std::string_view text, std::string file) {
  ConfigDocument doc;
  doc.m_file = std::move(file);
  YamlConverter converter{doc};
  try {
    YAML::Node root = YAML::Load(std::string(text));
    auto [line, column] = YamlConverter::position(root.Mark());
    doc.m_positions[""] = {line, column, line, column};
    json out;
    if (converter.convert(root, out, "", "", 0)) {
      doc.m_root = std::move(out);
    }
  } catch (const YAML::Exception& e) {
    converter.error_at(e.mark, "", "invalid YAML: " + e.msg);
    doc.m_root = nullptr;
    doc.m_unreadable = true;
  }
  return doc;
}

ConfigDocument ConfigDocument::from_json(json value, std::string file) {
  ConfigDocument doc;
  doc.m_file = std::move(file);
  doc.m_root = std::move(value);
  return doc;
}

ConfigNode ConfigDocument::root() const { return {&m_root, "", ""}; }

ConfigNode ConfigDocument::child(const ConfigNode& parent, const std::string& name) const {
  const json* v = &null_json();
  if (parent.value->is_object()) {
    auto it = parent.value->find(name);
    if (it != parent.value->end()) {
      v = &*it;
    }
  }
  return {v, parent.path + k_member_sep + name, parent.key.empty() ? name : parent.key + "." + name};
}

ConfigNode ConfigDocument::item(const ConfigNode& parent, size_t i) const {
  const json* v = &null_json();
  if (parent.value->is_array() && i < parent.value->size()) {
    v = &(*parent.value)[i];
  }
  return {v, parent.path + k_item_sep + std::to_string(i), parent.key + "[" + std::to_string(i) + "]"};
}

std::vector<std::string> ConfigDocument::members(const ConfigNode& n) const {
  std::vector<std::pair<std::pair<int, int>, std::string>> found;
  if (n.value->is_object()) {
    for (const auto& member : n.value->items()) {
      found.push_back({key_position(child(n, member.key())), member.key()});
    }
  }
  std::stable_sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (auto& f : found) {
    out.push_back(std::move(f.second));
  }
  return out;
}

std::vector<ConfigError> ConfigDocument::sorted_errors() const {
  std::vector<ConfigError> out = m_errors;
  auto rank = [](const ConfigError& e) { return std::pair<int, int>{e.line == 0 ? INT_MAX : e.line, e.column}; };
  std::stable_sort(out.begin(), out.end(),
                   [&](const ConfigError& a, const ConfigError& b) { return rank(a) < rank(b); });
  return out;
}

std::pair<int, int> ConfigDocument::value_position(const ConfigNode& n) const {
  auto it = m_positions.find(n.path);
  return it == m_positions.end() ? std::pair<int, int>{0, 0}
                                 : std::pair<int, int>{it->second.value_line, it->second.value_column};
}

std::pair<int, int> ConfigDocument::key_position(const ConfigNode& n) const {
  auto it = m_positions.find(n.path);
  return it == m_positions.end() ? std::pair<int, int>{0, 0}
                                 : std::pair<int, int>{it->second.key_line, it->second.key_column};
}

void ConfigDocument::error_at_value(const ConfigNode& n, std::string message, std::optional<std::string> key) {
  auto [line, column] = value_position(n);
  error(line, column, key ? *key : n.key, std::move(message));
}

void ConfigDocument::error_at_key(const ConfigNode& n, std::string message, std::optional<std::string> key) {
  auto [line, column] = key_position(n);
  error(line, column, key ? *key : n.key, std::move(message));
}

void ConfigDocument::error(int line, int column, std::string key, std::string message) {
  ConfigError e;
  e.file = m_file;
  e.line = line;
  e.column = column;
  e.key = std::move(key);
  e.message = std::move(message);
  m_errors.push_back(std::move(e));
}

// --- Value parsers ---

namespace option_values {

OptionMessage whole_number(const json& v, long long min, long long max, std::string_view what, long long& out) {
  auto bad = [&] { return "expected " + std::string(what) + ", got " + describe_config_value(v); };
  if (v.is_number_unsigned()) {
    auto u = v.get<unsigned long long>();
    if (u > static_cast<unsigned long long>(max) || static_cast<long long>(u) < min) {
      return bad();
    }
    out = static_cast<long long>(u);
    return std::nullopt;
  }
  if (v.is_number_integer()) {
    long long n = v.get<long long>();
    if (n < min || n > max) {
      return bad();
    }
    out = n;
    return std::nullopt;
  }
  if (v.is_string()) {
    auto n = util::parse_int<long long>(v.get<std::string>(), min, max);
    if (!n) {
      return bad();
    }
    out = *n;
    return std::nullopt;
  }
  return bad();
}

OptionMessage boolean(const json& v, bool& out) {
  if (v.is_boolean()) {
    out = v.get<bool>();
    return std::nullopt;
  }
  if (v.is_string()) {
    std::string s = util::to_lower(v.get<std::string>());
    if (s == "true" || s == "yes" || s == "on") {
      out = true;
      return std::nullopt;
    }
    if (s == "false" || s == "no" || s == "off") {
      out = false;
      return std::nullopt;
    }
  }
  return "expected true or false, got " + describe_config_value(v);
}

OptionMessage duration(const json& v, util::Millis& out, std::string_view what, bool allow_zero) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (allow_zero && s == "0") {
      out = 0;
      return std::nullopt;
    }
    auto d = core::parse_duration(s);
    if (d && (*d > 0 || allow_zero)) {
      out = *d;
      return std::nullopt;
    }
  }
  return "expected " + std::string(what) + ", got " + describe_config_value(v);
}

OptionMessage text(const json& v, std::string_view what, std::string& out) {
  if (!v.is_string()) {
    return "expected " + std::string(what) + ", got " + describe_config_value(v);
  }
  out = v.get<std::string>();
  return std::nullopt;
}

OptionMessage string_list(const json& v, std::string_view what, std::vector<std::string>& out) {
  std::vector<std::string> items;
  if (v.is_string()) {
    items.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const auto& item : v) {
      if (!item.is_string()) {
        return "expected a list of " + std::string(what) + ", got an item that is " + describe_config_value(item);
      }
      items.push_back(item.get<std::string>());
    }
  } else {
    return "expected a list of " + std::string(what) + ", got " + describe_config_value(v);
  }
  out = std::move(items);
  return std::nullopt;
}

} // namespace option_values

} // namespace idp::core
