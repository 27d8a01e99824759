#include "cli/template_catalog.hpp"

#include <algorithm>
#include <cstdlib>
#include <dirent.h>
#include <map>

#include "util/fs.hpp"
#include "util/strings.hpp"

#ifndef IDP_BUILTIN_TEMPLATES_DIR
#define IDP_BUILTIN_TEMPLATES_DIR "/usr/share/idp/templates"
#endif

namespace idp::cli {

std::vector<std::string> local_template_dirs() {
  const char* builtin = std::getenv("IDP_BUILTIN_TEMPLATES");
  std::vector<std::string> dirs = {builtin && *builtin ? builtin : IDP_BUILTIN_TEMPLATES_DIR};
  if (const char* extra = std::getenv("IDP_TEMPLATES_PATH")) {
    for (auto& d : util::split(extra, ':')) {
      if (!d.empty()) {
        dirs.push_back(d);
      }
    }
  }
  return dirs;
}

std::vector<core::Template> load_templates(const std::vector<std::string>& dirs, std::vector<std::string>* problems) {
  std::map<std::string, core::Template> by_name;
  for (size_t i = 0; i < dirs.size(); ++i) {
    DIR* d = ::opendir(dirs[i].c_str());
    if (!d) {
      continue;
    }
    std::vector<std::string> names;
    while (auto* ent = ::readdir(d)) {
      std::string n = ent->d_name;
      if (n != "." && n != "..") {
        names.push_back(n);
      }
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      std::string dir = util::path_join(dirs[i], n);
      auto text = util::read_file(util::path_join(dir, "template.json"));
      if (!text) {
        continue; // not a template directory
      }
      auto t = core::parse_template_manifest(*text, dir);
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
  std::vector<core::Template> out;
  for (auto& [_, t] : by_name) {
    out.push_back(std::move(t));
  }
  return out;
}

} // namespace idp::cli
