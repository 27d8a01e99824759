// KubernetesDriver in Argo CD mode: the namespace-level objects and an Application are
// applied; Argo CD syncs the workload from the repository, and the Application's status
// says when the revision is out (argocd.hpp).

#include <chrono>
#include <thread>

#include "drivers/kubernetes/kubernetes_driver.hpp"
#include "util/log.hpp"
#include "util/strings.hpp"

namespace idp::drivers::kubernetes {

namespace {

using json = nlohmann::json;

constexpr const char* k_argo_field_manager = "idp";

const ResourceKind& argo_kind(const char* api_version, const char* kind) {
  const ResourceKind* k = find_kind(api_version, kind);
  IDP_ASSERT(k != nullptr);
  return *k;
}
const ResourceKind& argo_namespaces() { return argo_kind("v1", "Namespace"); }
const ResourceKind& applications() { return argo_kind("argoproj.io/v1alpha1", "Application"); }

std::string argo_managed_by(const json& obj) {
  return obj.value("metadata", json::object()).value("labels", json::object()).value(k_label_managed_by, "");
}

bool deleting(const json& obj) {
  return obj.value("status", json::object()).value("phase", "") == "Terminating" ||
         obj.value("metadata", json::object()).contains("deletionTimestamp");
}

} // namespace

ArgoCdSettings KubernetesDriver::argo_settings() const {
  ArgoCdSettings a;
  a.ns = m_opts.argocd_namespace;
  a.project = m_opts.argocd_project;
  a.path = m_opts.argocd_path;
  a.repo_url = m_opts.argocd_repo_url;
  return a;
}

Expected<ApplyResult> KubernetesDriver::apply_argocd(const DeploySpec& spec, Progress& progress) {
  IDP_TRY_ASSIGN(KubeClient * c, client());
  IDP_TRY_ASSIGN(auto secret_values, resolve_secrets(spec));
  ArgoCdSettings argo = argo_settings();
  IDP_TRY_ASSIGN(auto objects, render_argocd_environment(spec, m_settings, argo, secret_values));
  const std::string& ns = spec.env.name;
  std::string app_name = util::quote(argo.ns + "/" + ns);

  // Never adopt a namespace or an Application someone else made.
  progress.step("checking namespace " + ns + " and Application " + argo.ns + "/" + ns);
  for (const ResourceKind* k : {&argo_namespaces(), &applications()}) {
    bool is_ns = k == &argo_namespaces();
    IDP_TRY_ASSIGN(auto existing, c->get(*k, is_ns ? "" : argo.ns, ns));
    std::string what = is_ns ? "namespace " + util::quote(ns) : "Argo CD Application " + app_name;
    if (existing && argo_managed_by(*existing) != m_opts.server_id) {
      return make_error(ErrorCode::conflict, what + " exists and is not managed by idp server " +
                                                 util::quote(m_opts.server_id) + " (label " + k_label_managed_by + "=" +
                                                 util::quote(argo_managed_by(*existing)) + "); not taking it over");
    }
    if (existing && deleting(*existing)) {
      return make_error(ErrorCode::transient, what + " is still being deleted; retry when it is gone");
    }
    if (existing && !is_ns) {
      objects.back()["metadata"]["annotations"]["idp.dev/previous-revision"] =
          existing->value("spec", json::object()).value("source", json::object()).value("targetRevision", "");
    }
  }
  json app = objects.back();
  std::string previous = app["metadata"]["annotations"].value("idp.dev/previous-revision", "");
  objects.back()["metadata"]["annotations"].erase("idp.dev/previous-revision");
  app["metadata"]["annotations"].erase("idp.dev/previous-revision");

  progress.step("applying " + std::to_string(objects.size()) + " objects (namespace " + ns + ", Application " +
                argo.ns + "/" + ns + ")");
  for (const auto& obj : objects) {
    auto applied = c->apply(obj, k_argo_field_manager);
    if (!applied) {
      return Unexpected(applied.error().with_context("environment " + util::quote(ns)));
    }
  }

  std::string target = argocd_target_revision(spec);
  progress.step("waiting for Argo CD to sync " + target.substr(0, 12) + " (revision " +
                std::to_string(spec.revision_id) + ")");
  int64_t deadline = util::steady_ms() + m_opts.rollout_timeout_ms;
  ApplicationState st;
  while (true) {
    if (progress.cancelled()) {
      return make_error(ErrorCode::cancelled, "sync of revision " + std::to_string(spec.revision_id) + " abandoned");
    }
    IDP_TRY_ASSIGN(auto live, c->get(applications(), argo.ns, ns));
    if (!live) {
      return make_error(ErrorCode::permanent, "Argo CD Application " + app_name + " disappeared during the sync");
    }
    st = application_state(*live);
    RolloutVerdict v = argocd_verdict(st);
    if (v == RolloutVerdict::done) {
      break;
    }
    if (v == RolloutVerdict::failed) {
      Error err(ErrorCode::permanent, "Argo CD could not roll out " + target.substr(0, 12) + " (revision " +
                                          std::to_string(spec.revision_id) + "): health " + util::quote(st.health) +
                                          ", sync " + util::quote(st.sync) +
                                          (st.message.empty() ? "" : ": " + st.message));
      if (!previous.empty() && previous != target) {
        // Back to the commit that served: the Application stops trying the broken one.
        json back = app;
        back["spec"]["source"]["targetRevision"] = previous;
        auto restored = c->apply(back, k_argo_field_manager);
        err.message += restored ? "; rolled the Application back to " + previous.substr(0, 12)
                                : "; rolling back failed too: " + restored.error().full_message();
      }
      return Unexpected(err.with_context("environment " + util::quote(ns)));
    }
    if (util::steady_ms() >= deadline) {
      return make_error(ErrorCode::timeout,
                        "environment " + util::quote(ns) + ": Argo CD did not sync " + target.substr(0, 12) +
                            " within " + util::format_duration(m_opts.rollout_timeout_ms) + " (sync " +
                            util::quote(st.sync) + " at " + util::quote(st.revision.substr(0, 12)) + ", health " +
                            util::quote(st.health) + (st.message.empty() ? "" : ": " + st.message) + ")");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(m_opts.poll_interval_ms));
  }
  ApplyResult result;
  result.outputs = {
      {"namespace", ns}, {"application", argo.ns + "/" + ns}, {"commit", st.revision}, {"revision", spec.revision_id}};
  return result;
}

Expected<Observation> KubernetesDriver::observe_argocd(const core::Environment& env) {
  IDP_TRY_ASSIGN(KubeClient * c, client());
  ArgoCdSettings argo = argo_settings();
  Observation o;
  IDP_TRY_ASSIGN(auto ns, c->get(argo_namespaces(), "", env.name));
  if (!ns || argo_managed_by(*ns) != m_opts.server_id || deleting(*ns)) {
    o.health = Health::not_running;
    o.detail = !ns || argo_managed_by(*ns) != m_opts.server_id
                   ? "no namespace " + util::quote(env.name)
                   : "namespace " + util::quote(env.name) + " is being deleted";
    return o;
  }
  IDP_TRY_ASSIGN(auto app, c->get(applications(), argo.ns, env.name));
  if (!app || argo_managed_by(*app) != m_opts.server_id || deleting(*app)) {
    o.health = Health::not_running;
    o.detail = "no Argo CD Application " + util::quote(argo.ns + "/" + env.name);
    return o;
  }
  return argocd_observation(application_state(*app), env.name, argo.ns);
}

Expected<void> KubernetesDriver::destroy_argocd(const core::Environment& env, Progress& progress) {
  IDP_TRY_ASSIGN(KubeClient * c, client());
  ArgoCdSettings argo = argo_settings();
  // The Application first (its finalizer has Argo CD delete what it synced), then the
  // namespace; each only when it is ours.
  struct Target {
    const ResourceKind* kind;
    std::string ns;
    std::string what;
  };
  std::vector<Target> gone;
  for (const Target& t : {Target{&applications(), argo.ns, "Argo CD Application " + argo.ns + "/" + env.name},
                          Target{&argo_namespaces(), "", "namespace " + env.name}}) {
    IDP_TRY_ASSIGN(auto obj, c->get(*t.kind, t.ns, env.name));
    if (!obj || argo_managed_by(*obj) != m_opts.server_id) {
      continue;
    }
    progress.step("deleting " + t.what);
    IDP_TRY_ASSIGN(bool started, c->remove(*t.kind, t.ns, env.name, "Foreground"));
    if (started) {
      gone.push_back(t);
    }
  }
  int64_t deadline = util::steady_ms() + m_opts.destroy_timeout_ms;
  for (const auto& t : gone) {
    progress.step("waiting for " + t.what + " to be gone");
    while (true) {
      IDP_TRY_ASSIGN(auto still, c->get(*t.kind, t.ns, env.name));
      if (!still) {
        break;
      }
      if (util::steady_ms() >= deadline) {
        return make_error(ErrorCode::timeout, t.what + " still exists " +
                                                  util::format_duration(m_opts.destroy_timeout_ms) +
                                                  " after its deletion (finalizers pending?)");
      }
      if (progress.cancelled()) {
        return make_error(ErrorCode::cancelled, "waiting for " + t.what + " abandoned");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(m_opts.poll_interval_ms));
    }
  }
  return {};
}

Expected<void> KubernetesDriver::sweep_argocd_orphans(const std::set<std::string>& keep,
                                                      std::vector<std::string>& deleted) {
  IDP_TRY_ASSIGN(KubeClient * c, client());
  ArgoCdSettings argo = argo_settings();
  IDP_TRY_ASSIGN(auto items,
                 c->list(applications(), argo.ns, std::string(k_label_managed_by) + "=" + m_opts.server_id));
  for (const auto& app : items) {
    std::string name = app["metadata"].value("name", "");
    std::string env = app["metadata"].value("labels", json::object()).value(k_label_environment, name);
    if (keep.count(env) || deleting(app) || argo_managed_by(app) != m_opts.server_id) {
      continue;
    }
    IDP_TRY(c->remove(applications(), argo.ns, name));
    spdlog::info("kubernetes driver: deleted Argo CD Application {}/{} (its environment no longer exists)", argo.ns,
                 name);
    deleted.push_back(argo.ns + "/" + name);
  }
  return {};
}

} // namespace idp::drivers::kubernetes
