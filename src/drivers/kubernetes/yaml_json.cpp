#include "drivers/kubernetes/yaml_json.hpp"

#include <cstdlib>
#include <regex>

#include <yaml-cpp/yaml.h>

namespace idp::drivers::kubernetes {

namespace {

// The YAML 1.2 core schema's plain-scalar forms (what sigs.k8s.io/yaml resolves).
const std::regex& int_re() {
  static const std::regex k_re("^[-+]?(0|[1-9][0-9]*)$");
  return k_re;
}
const std::regex& float_re() {
  static const std::regex k_re("^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$");
  return k_re;
}

nlohmann::json scalar(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() != "?") { // quoted (or explicitly tagged): a string
    return s;
  }
  if (s == "true" || s == "True" || s == "TRUE") {
    return true;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    return false;
  }
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") {
    return nullptr;
  }
  if (std::regex_match(s, int_re())) {
    errno = 0;
    long long v = std::strtoll(s.c_str(), nullptr, 10);
    if (errno == 0) {
      return v;
    }
  }
  if (std::regex_match(s, float_re())) {
    return std::strtod(s.c_str(), nullptr);
  }
  return s;
}

nlohmann::json convert(const YAML::Node& n) {
  switch (n.Type()) {
  case YAML::NodeType::Null:
  case YAML::NodeType::Undefined: return nullptr;
  case YAML::NodeType::Scalar: return scalar(n);
  case YAML::NodeType::Sequence: {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& e : n) {
      a.push_back(convert(e));
    }
    return a;
  }
  case YAML::NodeType::Map: {
    nlohmann::json o = nlohmann::json::object();
    for (const auto& kv : n) {
      o[kv.first.as<std::string>()] = convert(kv.second);
    }
    return o;
  }
  }
  return nullptr;
}

bool needs_quotes(const std::string& s) {
  if (s.empty() || s == "~" || s == "-" || s.front() == ' ' || s.back() == ' ') {
    return true;
  }
  static const char* k_words[] = {"true", "false", "null", "yes", "no", "on", "off", "y", "n"};
  std::string lower;
  for (char c : s) {
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  for (const char* w : k_words) {
    if (lower == w) {
      return true;
    }
  }
  if (std::regex_match(s, int_re()) || std::regex_match(s, float_re())) {
    return true;
  }
  // Characters that start or end YAML syntax, and anything outside printable ASCII.
  if (std::string("!&*{}[]|>'\"%@`#,?:-").find(s.front()) != std::string::npos) {
    return true;
  }
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f) {
      return true;
    }
  }
  return s.find(": ") != std::string::npos || s.find(" #") != std::string::npos || s.back() == ':';
}

void emit(YAML::Emitter& out, const nlohmann::json& j) {
  if (j.is_object()) {
    out << YAML::BeginMap;
    for (const auto& [k, v] : j.items()) {
      out << YAML::Key;
      if (needs_quotes(k)) {
        out << YAML::DoubleQuoted;
      }
      out << k << YAML::Value;
      emit(out, v);
    }
    out << YAML::EndMap;
  } else if (j.is_array()) {
    out << YAML::BeginSeq;
    for (const auto& v : j) {
      emit(out, v);
    }
    out << YAML::EndSeq;
  } else if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    if (s.find('\n') != std::string::npos) {
      out << YAML::DoubleQuoted << s;
    } else {
      if (needs_quotes(s)) {
        out << YAML::DoubleQuoted;
      }
      out << s;
    }
  } else if (j.is_boolean()) {
    out << (j.get<bool>() ? "true" : "false");
  } else if (j.is_null()) {
    out << YAML::Null;
  } else {
    out << j.dump();
  }
}

} // namespace

Expected<nlohmann::json> yaml_to_json(std::string_view text, std::string_view name) {
  try {
    YAML::Node root = YAML::Load(std::string(text));
    return convert(root);
  } catch (const YAML::Exception& e) {
    return make_error(ErrorCode::invalid_config, std::string(name) + ":" + std::to_string(e.mark.line + 1) + ":" +
                                                     std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
}

std::string json_to_yaml(const std::vector<nlohmann::json>& docs) {
  std::string text;
  for (size_t i = 0; i < docs.size(); ++i) {
    YAML::Emitter out;
    out.SetIndent(2);
    out.SetSeqFormat(YAML::Block);
    out.SetMapFormat(YAML::Block);
    emit(out, docs[i]);
    if (i > 0) {
      text += "---\n";
    }
    text += out.c_str();
    text += "\n";
  }
  return text;
}

} // namespace idp::drivers::kubernetes
