#include "drivers/kubernetes/argocd.hpp"

#include <regex>

#include "util/git.hpp"
#include "util/strings.hpp"

namespace idp::drivers::kubernetes {

namespace {

using json = nlohmann::json;

bool is_commit(const std::string& s) {
  return s.size() == 40 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// A URL Argo CD's repo server can clone: https, http, ssh, git, or scp-like user@host:path.
bool is_remote_url(const std::string& url) {
  static const std::regex k_scheme("^(https?|ssh|git)://[^/]+/.+");
  static const std::regex k_scp("^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/].*");
  return std::regex_match(url, k_scheme) || std::regex_match(url, k_scp);
}

// The Application compared with (and, for a branch target, any revision of) the target.
bool at_target(const ApplicationState& st) {
  return !st.revision.empty() && (st.revision == st.target || !is_commit(st.target));
}

} // namespace

Expected<std::string> argocd_repo_url(const DeploySpec& spec, const ArgoCdSettings& argo) {
  std::string url = argo.repo_url.empty() ? util::strip_url_credentials(spec.env.repo) : argo.repo_url;
  if (!is_remote_url(url)) {
    return make_error(ErrorCode::invalid_config,
                      "kubernetes runtime in Argo CD mode: the repository " + util::quote(url) +
                          " is not a URL Argo CD can pull (expected https://, ssh://, git:// or user@host:path; a "
                          "local directory is on the idp server's disk only): register the repository by its URL, "
                          "or set drivers.kubernetes.argocd_repo_url");
  }
  return url;
}

std::string argocd_target_revision(const DeploySpec& spec) {
  return spec.env.commit.empty() ? spec.env.branch : spec.env.commit;
}

Expected<json> render_application(const DeploySpec& spec, const RenderSettings& settings, const ArgoCdSettings& argo) {
  IDP_TRY_ASSIGN(std::string repo, argocd_repo_url(spec, argo));
  std::string revision = argocd_target_revision(spec);
  if (revision.empty()) {
    return make_error(ErrorCode::invalid_config,
                      "kubernetes runtime in Argo CD mode: the environment has neither a commit nor a branch");
  }
  json labels = {{k_label_environment, spec.env.name},
                 {k_label_managed_by, settings.server_id},
                 {"app.kubernetes.io/managed-by", "idp"}};
  std::string owner = label_value(spec.env.owner);
  if (!owner.empty()) {
    labels[k_label_owner] = owner;
  }
  json app = {
      {"apiVersion", "argoproj.io/v1alpha1"},
      {"kind", "Application"},
      {"metadata",
       {{"name", spec.env.name},
        {"namespace", argo.ns},
        {"labels", labels},
        {"annotations", {{"idp.dev/revision", std::to_string(spec.revision_id)}, {"idp.dev/branch", spec.env.branch}}},
        // Argo CD prunes what it created before the Application goes.
        {"finalizers", {k_argocd_finalizer}}}},
      {"spec",
       {{"project", argo.project},
        {"source", {{"repoURL", repo}, {"targetRevision", revision}, {"path", argo.path}}},
        {"destination", {{"server", k_argocd_in_cluster}, {"namespace", spec.env.name}}},
        {"syncPolicy",
         {{"automated", {{"prune", true}, {"selfHeal", true}}},
          // idp made the namespace (quota, network policy): Argo CD must not.
          {"syncOptions", {"CreateNamespace=false"}}}}}}};
  return app;
}

Expected<std::vector<json>> render_argocd_environment(const DeploySpec& spec, const RenderSettings& settings,
                                                      const ArgoCdSettings& argo,
                                                      const std::map<std::string, std::string>& secret_values) {
  IDP_TRY_ASSIGN(json app, render_application(spec, settings, argo));
  IDP_TRY_ASSIGN(std::vector<json> out, render_namespace_objects(spec, settings, secret_values));
  out.push_back(std::move(app));
  return out;
}

ApplicationState application_state(const json& app) {
  ApplicationState st;
  const json& status = app.value("status", json::object());
  const json& sync = status.value("sync", json::object());
  const json& health = status.value("health", json::object());
  st.sync = sync.value("status", "");
  st.revision = sync.value("revision", "");
  st.health = health.value("status", "");
  st.target = app.value("spec", json::object()).value("source", json::object()).value("targetRevision", "");
  std::vector<std::string> messages;
  if (!health.value("message", "").empty()) {
    messages.push_back(health.value("message", ""));
  }
  const json& op = status.value("operationState", json::object());
  std::string phase = op.value("phase", "");
  std::string op_revision = op.value("syncResult", json::object()).value("revision", "");
  if ((phase == "Failed" || phase == "Error") && (op_revision.empty() || op_revision == st.target)) {
    st.operation_failed = true;
    messages.push_back("sync " + phase + ": " + op.value("message", "(no message)"));
  }
  for (const auto& c : status.value("conditions", json::array())) {
    std::string type = c.value("type", "");
    if (util::ends_with(type, "Error")) {
      st.invalid_spec = st.invalid_spec || type == "InvalidSpecError";
      messages.push_back(type + ": " + c.value("message", ""));
    }
  }
  st.message = util::join(messages, "; ");
  return st;
}

RolloutVerdict argocd_verdict(const ApplicationState& st) {
  if (st.invalid_spec || st.operation_failed) {
    return RolloutVerdict::failed;
  }
  if (!at_target(st)) {
    return RolloutVerdict::waiting; // the status is of an earlier revision
  }
  if (st.health == "Degraded") {
    return RolloutVerdict::failed;
  }
  return st.sync == "Synced" && st.health == "Healthy" ? RolloutVerdict::done : RolloutVerdict::waiting;
}

Observation argocd_observation(const ApplicationState& st, const std::string& ns, const std::string& app_ns) {
  Observation o;
  std::string rev = st.revision.substr(0, 12);
  o.status = {{"namespace", ns},     {"application", app_ns + "/" + ns}, {"sync", st.sync},
              {"health", st.health}, {"revision", st.revision},          {"target_revision", st.target}};
  if (!st.message.empty()) {
    o.status["message"] = st.message;
  }
  if (st.health == "Healthy") {
    o.health = Health::healthy;
  } else if (st.health == "Suspended") {
    o.health = Health::stopped;
  } else if (st.health == "Degraded" || st.health == "Missing" || st.health == "Progressing") {
    o.health = Health::unhealthy;
  } else {
    o.health = Health::unknown;
  }
  o.detail = "Argo CD: " + (st.health.empty() ? std::string("no health yet") : st.health) + ", " +
             (st.sync.empty() ? std::string("not synced yet") : st.sync) + (rev.empty() ? "" : " at " + rev);
  if (st.sync == "OutOfSync") {
    // The cluster differs from the repository at the revision: someone changed it by hand
    // (self-heal puts it back), or a sync is pending.
    o.detail += ": drift, the live objects differ from " + util::quote(st.target.substr(0, 12)) +
                " (self-heal will sync them back)";
    o.warnings.push_back("drift: Argo CD reports the Application OutOfSync");
  }
  if (!st.message.empty()) {
    o.detail += ": " + st.message;
  }
  return o;
}

} // namespace idp::drivers::kubernetes
