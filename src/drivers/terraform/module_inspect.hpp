#pragma once
// What a Terraform root module declares, read from its *.tf / *.tf.json files without
// running terraform: variables (and whether they have a default), outputs (and whether
// they are sensitive), providers, and relative module sources. Enough to pass a template
// only the variables it declares and to know whether it talks to a cloud. No side effects.

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "util/expected.hpp"

namespace idp::drivers::terraform {

struct ModuleVariable {
  bool has_default = false;
  bool sensitive = false;
};

struct ModuleInfo {
  std::map<std::string, ModuleVariable> variables;
  std::map<std::string, bool> outputs;     // name → sensitive
  std::set<std::string> providers;         // `provider "x"` blocks and required_providers keys
  std::vector<std::string> module_sources; // `source` of module blocks, as written

  bool declares(std::string_view variable) const { return variables.count(std::string(variable)) > 0; }
};

// Scans one HCL text (comments, strings with interpolation and heredocs are skipped
// correctly) and adds what it declares to `info`.
void scan_hcl(std::string_view text, ModuleInfo& info);
// The same for the JSON syntax (*.tf.json); invalid_config when it is not JSON.
Expected<void> scan_tf_json(std::string_view text, ModuleInfo& info);
// Every *.tf and *.tf.json directly in `dir` (not in subdirectories: those are not part
// of the root module). not_found when `dir` does not exist.
Expected<ModuleInfo> inspect_module(const std::string& dir);

} // namespace idp::drivers::terraform
