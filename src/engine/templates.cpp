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
  return core::parse_template_manifest(text, dir);
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

Expected<Template> TemplateCatalog::get(const std::string& name) const { return core::find_template(list(), name); }

std::vector<core::ConfigError> TemplateCatalog::validate(const core::AppConfig& config, const Template& tmpl,
                                                         const std::string& file) const {
  return core::check_template_fields(config, tmpl, list(), file);
}

} // namespace idp::engine
