#pragma once
// YAML <-> JSON for Kubernetes documents (kubeconfig files in, manifests out). Scalars are
// resolved as Kubernetes reads YAML: plain true/false, null/~, integers and floats become
// JSON values; quoted scalars stay strings.

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/expected.hpp"

namespace idp::drivers::kubernetes {

// One YAML document as JSON. invalid_config "<name>:<line>:<col>: <what>" when malformed.
Expected<nlohmann::json> yaml_to_json(std::string_view text, std::string_view name);

// `docs` as a YAML stream ("---" between documents), block style, keys in the order the
// JSON objects hold them. Strings that YAML would read as another type are quoted.
std::string json_to_yaml(const std::vector<nlohmann::json>& docs);

} // namespace idp::drivers::kubernetes
