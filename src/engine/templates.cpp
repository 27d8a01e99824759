#include "engine/templates.hpp"

#include <algorithm>
#include <dirent.h>
#include <map>
#include <regex>
#include <set>

#include "core/schedule.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace idp::engine {

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
  return {{"name", name},           {"description", description}, {"components", components},
          {"runtimes", runtimes},   {"fields", fs},               {"outputs", outputs},
          {"estimated_cost", estimated_cost}, {"resources", resources}, {"builtin", builtin},
          {"dir", dir}};
}

std::vector<std::string> split_path_list(const std::string& list) {
  std::vector<std::string> out;
  for (auto& d : util::split(list, ':')) {
    if (!d.empty()) {
      out.push_back(d);
    }
  }
  return out;
}

TemplateCatalog::TemplateCatalog(std::string builtin_dir, std::vector<std::string> extra_dirs) {
  m_dirs.push_back(std::move(builtin_dir));
  for (auto& d : extra_dirs) {
    m_dirs.push_back(std::move(d));
  }
}

Expected<Template> TemplateCatalog::parse_manifest(const std::string& text, const std::string& dir) {
  auto bad = [&](const std::string& why) {
    return make_error(ErrorCode::invalid_config, util::path_join(dir, "template.json") + ": " + why);
  };
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return bad("expected a JSON object");
  }
  static const std::set<std::string> k_components = {"web", "database", "schedule", "static"};
  static const std::set<std::string> k_types = {"string", "integer", "boolean", "schedule", "path", "map"};
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
    t.description = j.value("description", "");
    t.components = j.at("components").get<std::vector<std::string>>();
    if (t.components.empty()) {
      return bad("key \"components\": expected at least one of web, database, schedule, static");
    }
    for (const auto& c : t.components) {
      if (!k_components.count(c)) {
        return bad("key \"components\": expected web, database, schedule or static, got " + util::quote(c));
      }
    }
    t.runtimes = j.value("runtimes", std::vector<std::string>{"local"});
    t.estimated_cost = j.value("estimated_cost", "");
    t.resources = j.value("resources", std::vector<std::string>{});
    if (j.contains("outputs")) {
      t.outputs = j.at("outputs");
      if (!t.outputs.is_object()) {
        return bad("key \"outputs\": expected an object of name: description");
      }
    }
    if (j.contains("fields")) {
      const json& fields = j.at("fields");
      if (!fields.is_object()) {
        return bad("key \"fields\": expected an object of config key: field spec");
      }
      for (const auto& [key, spec] : fields.items()) {
        TemplateField f;
        f.name = key;
        f.type = spec.value("type", "string");
        if (!k_types.count(f.type)) {
          return bad("field " + util::quote(key) + ": expected a type of string, integer, boolean, schedule, path or map, got " +
                     util::quote(f.type));
        }
        if (!core::app_config_key_known(key)) {
          return bad("field " + util::quote(key) + " is not a .idp/config.yml key");
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
            return bad("field " + util::quote(key) + ": invalid pattern " + util::quote(f.pattern));
          }
        }
        t.fields.push_back(std::move(f));
      }
    }
  } catch (const json::exception& e) {
    return bad(std::string("malformed manifest: ") + e.what());
  }
  return t;
}

std::vector<Template> TemplateCatalog::list(std::vector<std::string>* problems) const {
  std::map<std::string, Template> by_name;
  for (size_t i = 0; i < m_dirs.size(); ++i) {
    const auto& root = m_dirs[i];
    DIR* d = ::opendir(root.c_str());
    if (!d) {
      continue;
    }
    std::vector<std::string> names;
    while (auto* ent = ::readdir(d)) {
      std::string n = ent->d_name;
      if (n != "." && n != ".." && util::is_directory(util::path_join(root, n))) {
        names.push_back(n);
      }
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      std::string dir = util::path_join(root, n);
      auto text = util::read_file(util::path_join(dir, "template.json"));
      if (!text) {
        continue; // not a template directory
      }
      auto t = parse_manifest(*text, dir);
      if (!t) {
        if (problems) {
          problems->push_back(t.error().message);
        }
        continue;
      }
      t->builtin = (i == 0);
      by_name[t->name] = std::move(*t);
    }
  }
  std::vector<Template> out;
  for (auto& [_, t] : by_name) {
    out.push_back(std::move(t));
  }
  return out;
}

Expected<Template> TemplateCatalog::get(const std::string& name) const {
  auto all = list();
  std::vector<std::string> names;
  for (auto& t : all) {
    if (t.name == name) {
      return t;
    }
    names.push_back(t.name);
  }
  std::string hint = util::closest_match(name, names);
  return make_error(ErrorCode::not_found, "unknown template " + util::quote(name) +
                                              (hint.empty() ? "" : ", did you mean " + util::quote(hint) + "?") +
                                              " (available: " + util::join(names, ", ") + ")");
}

namespace {
// The value of a dotted config key as JSON, and whether the file set it.
json config_value(const core::AppConfig& c, const std::string& key) {
  json all = core::to_json(c);
  auto dot = key.find('.');
  if (dot == std::string::npos) {
    return all.value(key, json());
  }
  return all.value(key.substr(0, dot), json::object()).value(key.substr(dot + 1), json());
}
} // namespace

std::vector<core::ConfigError> TemplateCatalog::validate(const core::AppConfig& config, const Template& tmpl,
                                                         const std::string& file) const {
  std::vector<core::ConfigError> errors;
  auto err = [&](const std::string& key, const std::string& msg) {
    core::ConfigError e;
    e.file = file;
    auto pos = config.positions.find(key);
    if (pos != config.positions.end()) {
      e.line = pos->second.first;
      e.column = pos->second.second;
    }
    e.key = key;
    e.message = msg;
    errors.push_back(std::move(e));
  };
  // Keys some template accepts but this one does not.
  std::set<std::string> specific;
  for (const auto& t : list()) {
    for (const auto& f : t.fields) {
      specific.insert(f.name);
    }
  }
  for (const auto& key : config.keys_set) {
    if (specific.count(key) && !tmpl.field(key)) {
      std::vector<std::string> takers;
      for (const auto& t : list()) {
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
      err(f.name, "required by template " + util::quote(tmpl.name) +
                      (f.description.empty() ? "" : " (" + f.description + ")"));
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

} // namespace idp::engine
