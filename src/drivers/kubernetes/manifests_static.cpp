#include "drivers/kubernetes/manifests_static.hpp"

#include "core/command_line.hpp"
#include "drivers/kubernetes/manifests_routing.hpp"
#include "util/base64.hpp"
#include "util/hash.hpp"
#include "util/strings.hpp"

namespace idp::drivers::kubernetes {

namespace {

using json = nlohmann::json;

constexpr const char* k_archive_dir = "/idp/archive";
constexpr const char* k_work_dir = "/idp/work";
constexpr const char* k_site_dir = "/idp/site";
constexpr const char* k_html_dir = "/usr/share/nginx/html";

// static.dir without "./" in front or "/" behind ("" for the repository's root).
std::string clean_dir(std::string d) {
  while (util::starts_with(d, "./")) {
    d.erase(0, 2);
  }
  while (!d.empty() && d.back() == '/') {
    d.pop_back();
  }
  return d == "." ? "" : d;
}

// "part-000", "part-001", …: the script cats part-* in the shell's (sorted) order.
std::string part_key(size_t i) {
  std::string n = std::to_string(i);
  return "part-" + std::string(n.size() < 3 ? 3 - n.size() : 0, '0') + n;
}

} // namespace

bool serves_built_directory(const DeploySpec& spec) {
  return is_static_site(spec) && !spec.config.has_key("container_image");
}

std::pair<std::string, bool> site_archive_source(const DeploySpec& spec) {
  if (!spec.config.local.build.empty()) {
    return {"", true};
  }
  return {clean_dir(spec.config.static_site.dir), false};
}

const std::string& site_init_script() {
  // Fixed text: every value of the config reaches it as an environment variable or an
  // argument ("$@", the build's argv), never pasted into it.
  static const std::string k_script = R"(set -eu
say() {
  printf '%s\n' "$1" >&2
  printf '%s\n' "$1" > "${IDP_TERMINATION_LOG:-/dev/termination-log}" 2>/dev/null || true
}
mkdir -p "$IDP_WORK_DIR" "$IDP_SITE_DIR"
if ! cat "$IDP_ARCHIVE_DIR"/part-* | tar -xzf - -C "$IDP_WORK_DIR"; then
  say "unpacking the site's files failed"
  exit 1
fi
cd "$IDP_WORK_DIR"
if [ "$#" -gt 0 ]; then
  echo "building: $*"
  if "$@"; then :; else
    code=$?
    say "the build ($1) exited with status $code"
    exit 1
  fi
fi
if [ ! -f "$IDP_STATIC_DIR/index.html" ]; then
  say "static.dir $IDP_STATIC_DIR has no index.html"
  exit 1
fi
cp -R "$IDP_STATIC_DIR/." "$IDP_SITE_DIR/"
echo "serving $(find "$IDP_SITE_DIR" -type f | wc -l) files of $IDP_STATIC_DIR"
)";
  return k_script;
}

std::string site_server_block(bool spa) {
  std::string out = std::string("server {\n"
                                "  listen 80;\n"
                                "  server_name _;\n"
                                "  root ") +
                    k_html_dir + ";\n  index index.html;\n";
  if (spa) {
    // As the local runtime: a path that is not a file gets index.html (client-side
    // routing), except one ending in a file extension: a missing asset is a 404, never HTML.
    out += "  location / {\n    try_files $uri $uri/ /index.html;\n  }\n"
           "  location ~ \\.[^/]+$ {\n    try_files $uri =404;\n  }\n";
  } else {
    out += "  location / {\n    try_files $uri $uri/ =404;\n  }\n";
  }
  return out + "}\n";
}

Expected<StaticSiteObjects> render_static_site(const DeploySpec& spec, const RenderSettings& s, const SiteArchive& site,
                                               const json& labels, const std::string& env_secret,
                                               const json& container_resources) {
  if (site.tar_gz.empty()) {
    return make_error(ErrorCode::invalid_argument,
                      "static-site without container_image: the site's files were not read from the repository");
  }
  std::vector<std::string> build;
  if (site.built) {
    auto argv = core::split_command_line(spec.config.local.build);
    if (!argv) {
      return make_error(ErrorCode::invalid_config, "local.build: " + argv.error().message);
    }
    build = std::move(*argv);
  }
  std::string static_dir = clean_dir(spec.config.static_site.dir); // the archive keeps the repository's paths
  if (static_dir.empty()) {
    static_dir = ".";
  }
  const std::string& ns = spec.env.name;
  StaticSiteObjects out;
  out.site_hash = util::sha256_hex(site.tar_gz + '\0' + (site.built ? "built" : "files") + '\0' +
                                   util::join(build, "\x1f") + '\0' + static_dir)
                      .substr(0, 16);
  auto configmap = [&](const std::string& name) {
    return json{{"apiVersion", "v1"},
                {"kind", "ConfigMap"},
                {"metadata", {{"name", name}, {"namespace", ns}, {"labels", labels}}},
                {"immutable", true}};
  };
  json sources = json::array();
  size_t parts = (site.tar_gz.size() + k_site_part_bytes - 1) / k_site_part_bytes;
  for (size_t i = 0; i < parts; ++i) {
    std::string name = std::string(k_site_configmap_prefix) + out.site_hash + "-" + std::to_string(i);
    json cm = configmap(name);
    cm["binaryData"] = {
        {part_key(i),
         util::base64_encode(std::string_view(site.tar_gz).substr(i * k_site_part_bytes, k_site_part_bytes))}};
    out.configmaps.push_back(std::move(cm));
    sources.push_back({{"configMap", {{"name", name}}}});
  }
  std::string conf = site_server_block(spec.config.static_site.spa);
  std::string conf_name = std::string(k_site_configmap_prefix) + "nginx-" + util::sha256_hex(conf).substr(0, 16);
  json conf_map = configmap(conf_name);
  conf_map["data"] = {{"default.conf", conf}};
  out.configmaps.push_back(std::move(conf_map));

  out.volumes = json::array({
      {{"name", "site-archive"}, {"projected", {{"sources", sources}}}},
      {{"name", "site-work"}, {"emptyDir", json::object()}},
      {{"name", "site"}, {"emptyDir", json::object()}},
      {{"name", "site-conf"}, {"configMap", {{"name", conf_name}}}},
  });
  json command = json::array({"sh", "-c", site_init_script(), "idp-site"});
  for (const auto& a : build) {
    command.push_back(a);
  }
  out.init_container = {
      {"name", "site"},
      {"image", site.built ? s.static_build_image : s.static_image},
      {"command", command},
      {"env",
       {{{"name", "IDP_ARCHIVE_DIR"}, {"value", k_archive_dir}},
        {{"name", "IDP_WORK_DIR"}, {"value", k_work_dir}},
        {{"name", "IDP_SITE_DIR"}, {"value", k_site_dir}},
        {{"name", "IDP_STATIC_DIR"}, {"value", static_dir}}}},
      {"volumeMounts",
       {{{"name", "site-archive"}, {"mountPath", k_archive_dir}, {"readOnly", true}},
        {{"name", "site-work"}, {"mountPath", k_work_dir}},
        {{"name", "site"}, {"mountPath", k_site_dir}}}},
      {"resources", container_resources},
      {"securityContext", {{"allowPrivilegeEscalation", false}}},
  };
  if (site.built) {
    // The build sees the config's variables, as local.build does on the local runtime.
    out.init_container["envFrom"] = json::array({{{"secretRef", {{"name", env_secret}}}}});
  }
  out.mounts = json::array({{{"name", "site"}, {"mountPath", k_html_dir}, {"readOnly", true}},
                            {{"name", "site-conf"}, {"mountPath", "/etc/nginx/conf.d"}, {"readOnly", true}}});
  return out;
}

std::vector<std::string> site_configmaps_of(const json& pod_template) {
  std::vector<std::string> out;
  const json& spec = pod_template.is_object() ? pod_template.value("spec", json::object()) : json::object();
  for (const auto& v : spec.value("volumes", json::array())) {
    std::string direct = v.value("configMap", json::object()).value("name", "");
    if (!direct.empty()) {
      out.push_back(direct);
    }
    for (const auto& src : v.value("projected", json::object()).value("sources", json::array())) {
      std::string name = src.value("configMap", json::object()).value("name", "");
      if (!name.empty()) {
        out.push_back(name);
      }
    }
  }
  return out;
}

bool is_site_configmap_name(const std::string& name) { return util::starts_with(name, k_site_configmap_prefix); }

} // namespace idp::drivers::kubernetes
