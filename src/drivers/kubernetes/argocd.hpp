#pragma once
// Argo CD mode (`drivers.kubernetes.mode: argocd`): idp applies the environment's
// namespace-level objects (render_namespace_objects) and an Argo CD Application that syncs
// the repository's manifests directory at the deployed commit into the namespace;
// readiness, failure and drift come from the Application's status.sync and status.health.
// Pure functions of the spec and settings (the driver does the I/O).

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "drivers/driver.hpp"
#include "drivers/kubernetes/manifests.hpp"
#include "util/expected.hpp"

namespace idp::drivers::kubernetes {

struct ArgoCdSettings {
  std::string ns = "argocd"; // where Applications live (Argo CD's own namespace)
  std::string project = "default";
  std::string path = "k8s"; // the manifests' directory in the repository
  std::string repo_url;     // "" = the environment's repository
};

// Argo CD deletes what an Application created before the Application itself.
inline constexpr const char* k_argocd_finalizer = "resources-finalizer.argocd.argoproj.io";
// The cluster Argo CD runs in, as Argo CD names it.
inline constexpr const char* k_argocd_in_cluster = "https://kubernetes.default.svc";

// The repository Argo CD pulls: the `argocd_repo_url` option, else the environment's
// repository without credentials. invalid_config for a local path (Argo CD cannot pull
// from the idp server's disk).
Expected<std::string> argocd_repo_url(const DeploySpec& spec, const ArgoCdSettings& argo);

// What the Application tracks: the commit being deployed (the branch when there is none).
std::string argocd_target_revision(const DeploySpec& spec);

// The Application (argoproj.io/v1alpha1) of the environment: named after it, in
// `argo.ns`, labelled as its namespace, automated sync with prune and self-heal.
Expected<nlohmann::json> render_application(const DeploySpec& spec, const RenderSettings& settings,
                                            const ArgoCdSettings& argo);

// What apply sends in Argo CD mode, in order: render_namespace_objects, then the Application.
Expected<std::vector<nlohmann::json>>
render_argocd_environment(const DeploySpec& spec, const RenderSettings& settings, const ArgoCdSettings& argo,
                          const std::map<std::string, std::string>& secret_values);

// An Application's status as apply and observe read it.
struct ApplicationState {
  std::string sync;              // Synced | OutOfSync | Unknown | "" (not reconciled yet)
  std::string health;            // Healthy | Progressing | Degraded | Suspended | Missing | Unknown | ""
  std::string revision;          // status.sync.revision: the commit Argo CD compared with
  std::string target;            // spec.source.targetRevision
  std::string message;           // health message, failed operation message and error conditions
  bool operation_failed = false; // the last sync operation of `target` failed or errored
  bool invalid_spec = false;     // an InvalidSpecError condition: Argo CD will not sync it
};
ApplicationState application_state(const nlohmann::json& app);

// For apply: done (Synced at the target revision and Healthy), failed (with why), or neither yet.
enum class RolloutVerdict { waiting, done, failed };
RolloutVerdict argocd_verdict(const ApplicationState& st);

// For observe: healthy when Healthy (drift, OutOfSync, is said in the detail), stopped
// when Suspended, unhealthy when Degraded, Missing or Progressing, unknown otherwise.
Observation argocd_observation(const ApplicationState& st, const std::string& ns, const std::string& app_ns);

} // namespace idp::drivers::kubernetes
