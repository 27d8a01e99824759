#pragma once
// static-site without an image: the built directory served by a small web server.
//
// The files come from the repository at the deployed commit (the driver reads them with
// git, no code of the branch runs on the server), as one gzip'd tar cut into parts, each
// part the binaryData of an immutable ConfigMap `site-<hash>-<i>` (a ConfigMap holds at most
// 1 MiB). Without `local.build` the tar holds `static.dir` alone; with it, the whole tree,
// and the build runs in the pod. The pod:
// - initContainer `site` (the build image with a build, else the web server's image)
//   unpacks the parts into an emptyDir, runs the build there (argv, never a shell), checks
//   that static.dir has an index.html and copies static.dir into the emptyDir `site`;
// - container `app` (nginx) serves `site` on port 80, with static.spa's fallback to
//   index.html when the config asks for it (a ConfigMap with its server block).
// The hash names the ConfigMaps: a new set for each change, the old set kept for the pod
// template that uses it (a rollback to it brings its files back), pruned by the driver once
// no pod template in place uses it.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "drivers/driver.hpp"
#include "drivers/kubernetes/manifests.hpp"
#include "util/expected.hpp"

namespace idp::drivers::kubernetes {

// What the driver read from the repository for a static-site without container_image.
struct SiteArchive {
  std::string tar_gz; // static.dir's files (at their paths: dist/…), or the whole tree when `built`
  bool built = false; // local.build runs in the pod, on the whole tree
};

// The bytes of the archive one ConfigMap carries (under the API server's 1 MiB, with room
// for the object around it).
inline constexpr size_t k_site_part_bytes = 768 * 1024;
// The ConfigMaps of a site are named `site-<hash>-<i>`; the server block is `site-nginx-<hash>`.
inline constexpr const char* k_site_configmap_prefix = "site-";

// True for static-site configs without container_image: the runtime serves the built
// directory itself (else the image the config names serves the site).
bool serves_built_directory(const DeploySpec& spec);

// What the archive must hold for `spec`: {directory to archive, built}. With local.build:
// {"", true} (the whole tree); without: {static.dir, false}.
std::pair<std::string, bool> site_archive_source(const DeploySpec& spec);

// The parts of the environment the site adds.
struct StaticSiteObjects {
  std::vector<nlohmann::json> configmaps; // the archive's parts and the server block, applied before the Deployment
  nlohmann::json init_container;          // `site`
  nlohmann::json volumes;                 // of the pod
  nlohmann::json mounts;                  // of the app container
  std::string site_hash;                  // on the pod template (idp.dev/site-hash)
};
// invalid_config when local.build is not a command line; invalid_argument when `site` is
// empty (the driver did not read the files).
Expected<StaticSiteObjects> render_static_site(const DeploySpec& spec, const RenderSettings& s, const SiteArchive& site,
                                               const nlohmann::json& labels, const std::string& env_secret,
                                               const nlohmann::json& container_resources);

// The script of initContainer `site`: sh -c SCRIPT idp-site [BUILD ARGV...]. It reads
// IDP_ARCHIVE_DIR (the parts), IDP_WORK_DIR, IDP_SITE_DIR, IDP_STATIC_DIR (relative to the
// work directory) and IDP_TERMINATION_LOG (default /dev/termination-log, where a failure
// says why: the pod's status shows it).
const std::string& site_init_script();
// nginx's server block: port 80, the site's root, `spa` answering unknown paths with index.html.
std::string site_server_block(bool spa);

// The site ConfigMaps a pod template uses (its volumes' configMap and projected sources).
std::vector<std::string> site_configmaps_of(const nlohmann::json& pod_template);
// Whether a ConfigMap of this name is one of a site's.
bool is_site_configmap_name(const std::string& name);

} // namespace idp::drivers::kubernetes
