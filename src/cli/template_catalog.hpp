#pragma once
// The templates this machine has, for checks made without a server (`idp config
// validate`): the built-in directory (IDP_BUILTIN_TEMPLATES, else the one built in) and every
// directory on IDP_TEMPLATES_PATH, a later one overriding an earlier one of the same name,
// as `idp serve` reads them. The rules themselves are core::check_app_config's.

#include <string>
#include <vector>

#include "core/app_config_rules.hpp"

namespace idp::cli {

// The directories `idp serve` would read with this environment, built-in first.
std::vector<std::string> local_template_dirs();
// Every template found in `dirs`; manifests that fail to parse go to `problems`.
std::vector<core::Template> load_templates(const std::vector<std::string>& dirs, std::vector<std::string>* problems);

} // namespace idp::cli
