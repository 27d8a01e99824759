#include "core/app_config_rules.hpp"

#include <algorithm>
#include <cstdint>
#include <regex>
#include <set>

#include "util/strings.hpp"

namespace idp::core {

using nlohmann::json;

bool Template::has_component(std::string_view c) const {
  return std::find(components.begin(), components.end(), c) != components.end();
}

const TemplateField* Template::field(std::string_view n) const {
  for (const auto& f : fields) {
    if (f.name == n) {
      return &f;
    }
  }
  return nullptr;
}

json Template::to_json() const {
  json fs = json::array();
  for (const auto& f : fields) {
    json jf = {{"name", f.name}, {"type", f.type}, {"description", f.description}, {"required", f.required}};
    if (!f.default_value.is_null()) {
      jf["default"] = f.default_value;
    }
    if (f.minimum) {
      jf["minimum"] = *f.minimum;
    }
    if (f.maximum) {
      jf["maximum"] = *f.maximum;
    }
    if (!f.allowed.empty()) {
      jf["enum"] = f.allowed;
    }
    if (!f.pattern.empty()) {
      jf["pattern"] = f.pattern;
    }
    fs.push_back(jf);
  }
  return {{"name", name},
          {"description", description},
          {"components", components},
          {"runtimes", runtimes},
          {"fields", fs},
          {"outputs", outputs},
          {"estimated_cost", estimated_cost},
          {"resources", resources},
          {"builtin", builtin},
          {"hidden", hidden},
          {"dir", dir}};
}

namespace {

// One field spec (manifest or API shape) into `f`; the reason when malformed.
std::optional<std::string> read_field(const json& spec, TemplateField& f) {
  static const std::set<std::string> k_types = {"string", "integer", "boolean", "schedule", "path", "map"};
  if (!spec.is_object()) {
    return "field " + util::quote(f.name) + ": expected an object";
  }
  f.type = spec.value("type", "string");
  if (!k_types.count(f.type)) {
    return "field " + util::quote(f.name) +
           ": expected a type of string, integer, boolean, schedule, path or map, got " + util::quote(f.type);
  }
  if (!app_config_key_known(f.name)) {
    return "field " + util::quote(f.name) + " is not a .idp/config.yml key";
  }
  f.description = spec.value("description", "");
  f.required = spec.value("required", false);
  if (spec.contains("default")) {
    f.default_value = spec.at("default");
  }
  if (spec.contains("minimum")) {
    f.minimum = spec.at("minimum").get<long long>();
  }
  if (spec.contains("maximum")) {
    f.maximum = spec.at("maximum").get<long long>();
  }
  f.allowed = spec.value("enum", std::vector<std::string>{});
  f.pattern = spec.value("pattern", "");
  if (!f.pattern.empty()) {
    try {
      std::regex re(f.pattern);
    } catch (const std::regex_error&) {
      return "field " + util::quote(f.name) + ": invalid pattern " + util::quote(f.pattern);
    }
  }
  return std::nullopt;
}

// The fields common to a manifest and the API shape; the reason when malformed.
std::optional<std::string> read_common(const json& j, Template& t) {
  static const std::set<std::string> k_components = {"web", "database", "schedule", "static"};
  t.description = j.value("description", "");
  t.components = j.at("components").get<std::vector<std::string>>();
  if (t.components.empty()) {
    return "key \"components\": expected at least one of web, database, schedule, static";
  }
  for (const auto& c : t.components) {
    if (!k_components.count(c)) {
      return "key \"components\": expected web, database, schedule or static, got " + util::quote(c);
    }
  }
  t.runtimes = j.value("runtimes", std::vector<std::string>{"local"});
  t.estimated_cost = j.value("estimated_cost", "");
  t.resources = j.value("resources", std::vector<std::string>{});
  t.hidden = j.value("hidden", false);
  if (j.contains("outputs")) {
    t.outputs = j.at("outputs");
    if (!t.outputs.is_object()) {
      return "key \"outputs\": expected an object of name: description";
    }
  }
  return std::nullopt;
}

// The value of a dotted config key as JSON.
json config_value(const AppConfig& c, const std::string& key) {
  json all = to_json(c);
  auto dot = key.find('.');
  if (dot == std::string::npos) {
    return all.value(key, json());
  }
  return all.value(key.substr(0, dot), json::object()).value(key.substr(dot + 1), json());
}

ConfigError error_at(const AppConfig& config, const std::string& file, const std::string& key, std::string msg) {
  ConfigError e;
  e.file = file;
  auto pos = config.positions.find(key);
  if (pos != config.positions.end()) {
    e.line = pos->second.first;
    e.column = pos->second.second;
  }
  e.key = key;
  e.message = std::move(msg);
  return e;
}

} // namespace

Expected<Template> parse_template_manifest(const std::string& text, const std::string& dir) {
  auto bad = [&](const std::string& why) {
    return make_error(ErrorCode::invalid_config, dir + "/template.json: " + why);
  };
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return bad("expected a JSON object");
  }
  static const std::regex k_name("^[a-z0-9][a-z0-9-]{0,62}$");
  Template t;
  t.dir = dir;
  try {
    t.name = j.at("name").get<std::string>();
    if (!std::regex_match(t.name, k_name)) {
      return bad("key \"name\": expected lowercase letters, digits and '-', got " + util::quote(t.name));
    }
    std::string base = dir.substr(dir.rfind('/') + 1);
    if (base != t.name) {
      return bad("key \"name\": " + util::quote(t.name) + " does not match its directory " + util::quote(base));
    }
    if (auto why = read_common(j, t)) {
      return bad(*why);
    }
    if (j.contains("fields")) {
      const json& fields = j.at("fields");
      if (!fields.is_object()) {
        return bad("key \"fields\": expected an object of config key: field spec");
      }
      for (const auto& [key, spec] : fields.items()) {
        TemplateField f;
        f.name = key;
        if (auto why = read_field(spec, f)) {
          return bad(*why);
        }
        t.fields.push_back(std::move(f));
      }
    }
  } catch (const json::exception& e) {
    return bad(std::string("malformed manifest: ") + e.what());
  }
  return t;
}

Expected<Template> template_from_json(const json& j) {
  auto bad = [](const std::string& why) { return make_error(ErrorCode::invalid_config, "template: " + why); };
  if (!j.is_object()) {
    return bad("expected a JSON object");
  }
  Template t;
  try {
    t.name = j.at("name").get<std::string>();
    t.dir = j.value("dir", "");
    t.builtin = j.value("builtin", false);
    if (auto why = read_common(j, t)) {
      return bad(*why);
    }
    for (const auto& spec : j.value("fields", json::array())) {
      TemplateField f;
      f.name = spec.at("name").get<std::string>();
      if (auto why = read_field(spec, f)) {
        return bad(*why);
      }
      t.fields.push_back(std::move(f));
    }
  } catch (const json::exception& e) {
    return bad(std::string("malformed: ") + e.what());
  }
  return t;
}

Expected<Template> find_template(const std::vector<Template>& all, const std::string& name) {
  std::vector<std::string> names;
  for (const auto& t : all) {
    if (t.name == name) {
      return t;
    }
    if (!t.hidden) {
      names.push_back(t.name);
    }
  }
  std::string hint = util::closest_match(name, names);
  return make_error(ErrorCode::not_found, "unknown template " + util::quote(name) +
                                              (hint.empty() ? "" : ", did you mean " + util::quote(hint) + "?") +
                                              " (available: " + util::join(names, ", ") + ")");
}

std::vector<ConfigError> check_template_fields(const AppConfig& config, const Template& tmpl,
                                               const std::vector<Template>& all, const std::string& file) {
  std::vector<ConfigError> errors;
  auto err = [&](const std::string& key, std::string msg) {
    errors.push_back(error_at(config, file, key, std::move(msg)));
  };
  // Keys some template accepts but this one does not.
  std::set<std::string> specific;
  for (const auto& t : all) {
    for (const auto& f : t.fields) {
      specific.insert(f.name);
    }
  }
  for (const auto& key : config.keys_set) {
    if (specific.count(key) && !tmpl.field(key)) {
      std::vector<std::string> takers;
      for (const auto& t : all) {
        if (t.field(key)) {
          takers.push_back(t.name);
        }
      }
      err(key, "not accepted by template " + util::quote(tmpl.name) + " (used by " + util::join(takers, ", ") + ")");
    }
  }
  for (const auto& f : tmpl.fields) {
    bool set = config.has_key(f.name);
    if (f.required && !set) {
      // A missing key has no position of its own: point at the template that asks for it.
      ConfigError e = error_at(config, file, "template", "");
      e.key = f.name;
      e.message =
          "required by template " + util::quote(tmpl.name) + (f.description.empty() ? "" : " (" + f.description + ")");
      errors.push_back(std::move(e));
      continue;
    }
    if (!set) {
      continue;
    }
    json v = config_value(config, f.name);
    if (f.type == "integer" && v.is_number_integer()) {
      long long n = v.get<long long>();
      if ((f.minimum && n < *f.minimum) || (f.maximum && n > *f.maximum)) {
        err(f.name, "expected a value between " + (f.minimum ? std::to_string(*f.minimum) : std::string("-inf")) +
                        " and " + (f.maximum ? std::to_string(*f.maximum) : std::string("inf")) + ", got " +
                        std::to_string(n));
      }
    }
    if (v.is_string()) {
      std::string s = v.get<std::string>();
      if (!f.allowed.empty() && std::find(f.allowed.begin(), f.allowed.end(), s) == f.allowed.end()) {
        err(f.name, "expected one of " + util::join(f.allowed, ", ") + ", got " + util::quote(s));
      }
      if (!f.pattern.empty() && !std::regex_search(s, std::regex(f.pattern))) {
        err(f.name, "expected a value matching " + util::quote(f.pattern) + ", got " + util::quote(s));
      }
      if (f.type == "schedule" && s.empty()) {
        err(f.name, "expected a schedule like rate(1 hour) or cron(0 12 * * ? *), got \"\"");
      }
    }
  }
  return errors;
}

std::vector<ConfigError> check_app_config(const AppConfig& config, const AppConfigRules& rules,
                                          const std::string& file) {
  std::vector<ConfigError> errors;
  auto tmpl = find_template(rules.templates, config.template_name);
  if (!tmpl) {
    errors.push_back(error_at(config, file, "template", tmpl.error().message));
  } else {
    errors = check_template_fields(config, *tmpl, rules.templates, file);
  }
  if (rules.check_ttl) {
    if (auto ttl = rules.ttl_policy.parse(config.ttl); !ttl) {
      errors.push_back(error_at(config, file, "ttl", ttl.error().message));
    }
  }
  // The order of the file, so the messages read top to bottom.
  std::stable_sort(errors.begin(), errors.end(), [](const ConfigError& a, const ConfigError& b) {
    return (a.line == 0 ? INT32_MAX : a.line) < (b.line == 0 ? INT32_MAX : b.line);
  });
  return errors;
}

ConfigParseResult validate_app_config(std::string_view text, const AppConfigRules& rules, const std::string& file,
                                      const std::string& template_override, const std::string& default_template) {
  ConfigParseResult result = parse_app_config(text, file);
  if (!template_override.empty()) {
    result.config.template_name = template_override;
  } else if (!result.config.has_key("template") && !default_template.empty()) {
    result.config.template_name = default_template;
  }
  std::set<std::string> failed;
  for (const auto& e : result.errors) {
    failed.insert(e.key);
    if (e.key.empty() && e.message.rfind("invalid YAML", 0) == 0) {
      return result; // nothing was read: rules would only repeat that
    }
  }
  for (auto& e : check_app_config(result.config, rules, file)) {
    if (!failed.count(e.key)) {
      result.errors.push_back(std::move(e));
    }
  }
  std::stable_sort(result.errors.begin(), result.errors.end(), [](const ConfigError& a, const ConfigError& b) {
    return (a.line == 0 ? INT32_MAX : a.line) < (b.line == 0 ? INT32_MAX : b.line);
  });
  return result;
}

} // namespace idp::core
