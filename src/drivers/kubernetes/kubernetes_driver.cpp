#include "drivers/kubernetes/kubernetes_driver.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>
#include <thread>

#include "core/app_config.hpp"
#include "drivers/common/interactive_exec.hpp"
#include "drivers/kubernetes/manifests_routing.hpp"
#include "drivers/kubernetes/yaml_json.hpp"
#include "util/fs.hpp"
#include "util/git.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/log.hpp"
#include "util/strings.hpp"

namespace idp::drivers::kubernetes {

namespace {

using json = nlohmann::json;

constexpr const char* k_field_manager = "idp";

const ResourceKind& kind_of(const char* api_version, const char* kind) {
  const ResourceKind* k = find_kind(api_version, kind);
  IDP_ASSERT(k != nullptr);
  return *k;
}
const ResourceKind& namespaces() { return kind_of("v1", "Namespace"); }
const ResourceKind& deployments() { return kind_of("apps/v1", "Deployment"); }
const ResourceKind& pods() { return kind_of("v1", "Pod"); }
const ResourceKind& cronjobs() { return kind_of("batch/v1", "CronJob"); }
const ResourceKind& events() { return kind_of("v1", "Event"); }
const ResourceKind& secrets() { return kind_of("v1", "Secret"); }
const ResourceKind& configmaps() { return kind_of("v1", "ConfigMap"); }
const ResourceKind& httproutes() { return kind_of("gateway.networking.k8s.io/v1", "HTTPRoute"); }

// How many of the namespace's events `idp status` shows (the newest).
constexpr size_t k_max_events = 20;

std::string managed_by(const json& obj) {
  const json& md = obj.value("metadata", json::object());
  return md.value("labels", json::object()).value(k_label_managed_by, "");
}

bool terminating(const json& ns) {
  return ns.value("status", json::object()).value("phase", "") == "Terminating" ||
         ns.value("metadata", json::object()).contains("deletionTimestamp");
}

int64_t num(const json& obj, const char* key) {
  return obj.is_object() && obj.contains(key) && obj[key].is_number_integer() ? obj[key].get<int64_t>() : 0;
}

// Rolled out: the controller saw this generation, every replica runs the new template and
// is available, and no old replica is left (kubectl rollout status's rule).
bool rolled_out(const json& dep) {
  const json& st = dep.value("status", json::object());
  int64_t want = dep.value("spec", json::object()).value("replicas", 1);
  return num(st, "observedGeneration") >= dep["metadata"].value("generation", 1) &&
         num(st, "updatedReplicas") >= want && num(st, "availableReplicas") >= want &&
         num(st, "replicas") <= num(st, "updatedReplicas");
}

// The pod template that last served and its revision. The Deployment carries it in two
// annotations from the first rollout that replaced a served template on: a failed rollout
// goes back to it even when the Deployment holds a template that never served (a rollout
// cancelled by a newer push, or cut short by a restart, before the one that failed).
constexpr const char* k_annotation_revision = "idp.dev/revision";
constexpr const char* k_annotation_serving_revision = "idp.dev/serving-revision";
constexpr const char* k_annotation_serving_template = "idp.dev/serving-template";
// Annotations may take 256 KiB in all: a template larger than this is not carried.
constexpr size_t k_max_serving_template = 128 * 1024;

struct ServingTemplate {
  json pod_template;
  std::string revision;
};

// The Deployment's current template served once: it is rolled out now, or its ReplicaSet
// became available for this generation (Progressing/NewReplicaSetAvailable stays so when a
// pod fails later).
bool template_served(const json& dep) {
  if (rolled_out(dep)) {
    return true;
  }
  const json& st = dep.value("status", json::object());
  if (num(st, "observedGeneration") < dep.value("metadata", json::object()).value("generation", 1)) {
    return false;
  }
  for (const auto& c : st.value("conditions", json::array())) {
    if (c.value("type", "") == "Progressing" && c.value("status", "") == "True" &&
        c.value("reason", "") == "NewReplicaSetAvailable") {
      return true;
    }
  }
  return false;
}

// What a failed rollout over `dep` (the Deployment before it) goes back to: its own template
// when that served, else the served one it carries; none for a Deployment that never served.
std::optional<ServingTemplate> serving_template(const json& dep) {
  auto revision = [&](const char* key) {
    std::string r = annotation_of(dep, key);
    return r.empty() ? std::string("?") : r;
  };
  const json& spec = dep.value("spec", json::object());
  if (template_served(dep) && spec.contains("template") && spec["template"].is_object()) {
    return ServingTemplate{spec["template"], revision(k_annotation_revision)};
  }
  json t = json::parse(annotation_of(dep, k_annotation_serving_template), nullptr, false);
  if (!t.is_object()) {
    return std::nullopt; // none carried (or not JSON)
  }
  return ServingTemplate{std::move(t), revision(k_annotation_serving_revision)};
}

// The rendered Deployment among `objects` (nullptr: a CronJob workload).
json* deployment_in(std::vector<json>& objects) {
  for (auto& o : objects) {
    if (o.value("kind", "") == "Deployment") {
      return &o;
    }
  }
  return nullptr;
}

std::string progress_deadline_exceeded(const json& dep) {
  for (const auto& c : dep.value("status", json::object()).value("conditions", json::array())) {
    if (c.value("type", "") == "Progressing" && c.value("status", "") == "False" &&
        c.value("reason", "") == "ProgressDeadlineExceeded") {
      return c.value("message", "progress deadline exceeded");
    }
  }
  return "";
}

} // namespace

KubernetesDriver::KubernetesDriver(const DriverContext& ctx, KubernetesOptions opts, std::unique_ptr<KubeClient> client,
                                   Error connect_error, bool configured)
    : m_ctx(ctx), m_opts(std::move(opts)), m_client(std::move(client)), m_connect_error(std::move(connect_error)),
      m_configured(configured) {
  m_settings.server_id = m_opts.server_id;
  m_settings.untrusted_egress_cidrs = ctx.untrusted.egress_cidrs;
  m_settings.domain = m_opts.domain.empty() ? ctx.domain : m_opts.domain;
  m_settings.ingress_class = m_opts.ingress_class;
  m_settings.ingress_namespace = m_opts.ingress_namespace;
  m_settings.tls_secret = m_opts.tls_secret;
  m_settings.replicas = m_opts.replicas;
  m_settings.static_image = m_opts.static_image;
  m_settings.static_build_image = m_opts.static_build_image;
  m_settings.database.image = m_opts.postgres_image;
  m_settings.database.storage = m_opts.postgres_storage;
  m_settings.database.storage_class = m_opts.storage_class;
  m_settings.database.cnpg_namespace = m_opts.cnpg_namespace;
  m_settings.routing = m_opts.routing;
  m_settings.gateway_name = m_opts.gateway_name;
  m_settings.gateway_namespace = m_opts.gateway_namespace;
  m_settings.gateway_section = m_opts.gateway_section;
  m_settings.gateway_proxy_namespace = m_opts.gateway_proxy_namespace;
  m_settings.gateway_tls = m_opts.gateway_tls;
}

KubernetesDriver::~KubernetesDriver() { stop(true); }

Expected<KubeClient*> KubernetesDriver::client() {
  if (!m_client) {
    return Unexpected(m_connect_error);
  }
  return m_client.get();
}

KubeStats KubernetesDriver::stats() const { return m_client ? m_client->stats() : KubeStats{}; }

Expected<void> KubernetesDriver::start(const std::vector<core::Environment>& live) {
  if (!m_client || (!m_configured && live.empty())) {
    return {}; // nothing of ours can be on a cluster nobody configured
  }
  auto swept = sweep_orphans(live);
  if (!swept) {
    // Startup does not depend on the cluster: the next operation reports it.
    spdlog::warn("kubernetes driver: orphan sweep skipped: {}", swept.error().full_message());
  }
  if (m_opts.watch && !argocd_mode() && !m_watcher.joinable()) {
    m_stop_watch = false;
    m_watcher = std::thread([this] { watch_loop(); });
  }
  return {};
}

void KubernetesDriver::stop(bool keep_running) {
  // The cluster runs the environments whatever the server does: only the watch ends.
  (void)keep_running;
  {
    std::lock_guard lock(m_watch_mu);
    m_stop_watch = true;
  }
  m_watch_cv.notify_all();
  if (m_watcher.joinable()) {
    m_watcher.join(); // the watch's request notices within a second
  }
}

void KubernetesDriver::mark_deleting(const std::string& ns, bool yes) {
  std::lock_guard lock(m_watch_mu);
  if (yes) {
    m_deleting.insert(ns);
  } else {
    m_deleting.erase(ns);
  }
}

bool KubernetesDriver::watch_synced() const {
  std::lock_guard lock(m_watch_mu);
  return m_watch_synced;
}

void KubernetesDriver::watch_wait(int64_t ms) {
  std::unique_lock lock(m_watch_mu);
  m_watch_cv.wait_for(lock, std::chrono::milliseconds(ms), [&] { return m_stop_watch.load(); });
}

// List this server's Deployments, then watch them from the list's version; on any error
// list again (after a pause growing to 30 s). While not following, observe reads the
// cluster itself.
void KubernetesDriver::watch_loop() {
  const std::string selector = std::string(k_label_managed_by) + "=" + m_opts.server_id;
  int64_t pause = m_opts.poll_interval_ms;
  auto unsynced = [&] {
    std::lock_guard lock(m_watch_mu);
    m_watch_synced = false;
  };
  while (!m_stop_watch) {
    auto listed = m_client->list_versioned(deployments(), "", selector);
    if (!listed) {
      spdlog::debug("kubernetes driver: cannot list deployments to watch: {}", listed.error().full_message());
      watch_wait(pause);
      pause = std::min<int64_t>(pause * 2, 30000);
      continue;
    }
    {
      std::lock_guard lock(m_watch_mu);
      m_watched.clear();
      for (const auto& d : listed->items) {
        if (d["metadata"].value("name", "") == k_workload_name) {
          m_watched[d["metadata"].value("namespace", "")] = d;
        }
      }
      m_watch_synced = true;
    }
    pause = m_opts.poll_interval_ms;
    std::string version = listed->resource_version;
    while (!m_stop_watch) {
      auto watched = m_client->watch(
          deployments(), "", selector, version, static_cast<int>(std::max<int64_t>(1, m_opts.watch_timeout_ms / 1000)),
          [&](const json& ev) {
            const json& md = ev["object"].value("metadata", json::object());
            if (!md.value("resourceVersion", "").empty()) {
              version = md.value("resourceVersion", "");
            }
            if (ev["type"] == "BOOKMARK" || md.value("name", "") != k_workload_name) {
              return;
            }
            std::lock_guard lock(m_watch_mu);
            if (ev["type"] == "DELETED") {
              m_watched.erase(md.value("namespace", ""));
            } else {
              m_watched[md.value("namespace", "")] = ev["object"];
            }
          },
          m_stop_watch);
      if (!watched) {
        unsynced(); // what happened meanwhile is unknown: list again
        spdlog::debug("kubernetes driver: watch of deployments ended: {}", watched.error().full_message());
        if (watched.error().code != ErrorCode::conflict) {
          watch_wait(pause);
        }
        break;
      }
    }
  }
  unsynced();
}

Expected<std::vector<std::string>> KubernetesDriver::sweep_orphans(const std::vector<core::Environment>& live) {
  IDP_TRY_ASSIGN(KubeClient * c, client());
  std::set<std::string> keep;
  for (const auto& e : live) {
    keep.insert(e.name);
  }
  IDP_TRY_ASSIGN(auto items, c->list(namespaces(), "", std::string(k_label_managed_by) + "=" + m_opts.server_id));
  std::vector<std::string> deleted;
  for (const auto& ns : items) {
    std::string name = ns["metadata"].value("name", "");
    if (keep.count(name) || terminating(ns) || managed_by(ns) != m_opts.server_id) {
      continue;
    }
    mark_deleting(name, true);
    IDP_TRY(c->remove(namespaces(), "", name));
    spdlog::info("kubernetes driver: deleted namespace {} (its environment no longer exists)", name);
    deleted.push_back(name);
  }
  if (argocd_mode()) {
    IDP_TRY(sweep_argocd_orphans(keep, deleted));
  }
  return deleted;
}

Expected<std::map<std::string, std::string>> KubernetesDriver::resolve_secrets(const DeploySpec& spec) const {
  std::map<std::string, std::string> out;
  for (const auto& [name, ref] : spec.config.secrets) {
    if (!core::is_secret_store_name(ref)) {
      return make_error(ErrorCode::invalid_config, "secrets." + name +
                                                       ": expected the name of a secret in the server's secret store "
                                                       "(ARNs are for the terraform runtime)");
    }
    if (!m_ctx.secrets.resolve) {
      return make_error(ErrorCode::invalid_config, "secret " + util::quote(name) +
                                                       ": this server has no secret store to take " + util::quote(ref) +
                                                       " from");
    }
    auto v = m_ctx.secrets.resolve(spec.env.repo, ref);
    if (!v) {
      return Unexpected(v.error().with_context("secret " + util::quote(name)));
    }
    out[name] = std::move(*v);
  }
  return out;
}

Expected<std::vector<json>> KubernetesDriver::render_objects(const DeploySpec& spec) const {
  // Placeholders stand for secret values: rendering never needs (or shows) them.
  std::map<std::string, std::string> placeholders;
  for (const auto& [name, ref] : spec.config.secrets) {
    placeholders[name] = "<secret " + ref + ">";
  }
  if (m_opts.mode == KubernetesOptions::Mode::argocd) {
    return render_argocd_environment(spec, m_settings, argo_settings(), placeholders);
  }
  RenderSettings settings = m_settings;
  settings.database.cloudnative_pg = m_opts.database == "cloudnative-pg"; // auto: decided at apply
  if (is_static_site(spec)) {
    IDP_TRY(check_static_site(spec)); // before reading the repository for a config that cannot render
  }
  IDP_TRY_ASSIGN(auto site, read_site(spec));
  return render_environment(spec, settings, placeholders, site ? &*site : nullptr);
}

Expected<std::string> KubernetesDriver::render(const DeploySpec& spec) const {
  IDP_TRY_ASSIGN(auto objects, render_objects(spec));
  return json_to_yaml(objects);
}

Expected<void> KubernetesDriver::plan(const DeploySpec& spec) {
  IDP_TRY(render_objects(spec));
  for (const auto& [name, ref] : spec.config.secrets) {
    if (!core::is_secret_store_name(ref)) {
      return make_error(ErrorCode::invalid_config, "secrets." + name +
                                                       ": expected the name of a secret in the server's secret store "
                                                       "(ARNs are for the terraform runtime)");
    }
  }
  return {};
}

Expected<ApplyResult> KubernetesDriver::apply(const DeploySpec& spec, Progress& progress) {
  if (argocd_mode()) {
    return apply_argocd(spec, progress);
  }
  IDP_TRY_ASSIGN(KubeClient * c, client());
  IDP_TRY_ASSIGN(auto secret_values, resolve_secrets(spec));
  if (is_static_site(spec)) {
    IDP_TRY(check_static_site(spec)); // config errors before reading the repository
  }
  IDP_TRY_ASSIGN(auto site, read_site(spec));
  const SiteArchive* files = site ? &*site : nullptr;
  IDP_TRY_ASSIGN(auto objects, render_environment(spec, m_settings, secret_values, files)); // config errors first
  const std::string& ns = spec.env.name;
  bool has_deployment = false;
  for (const auto& o : objects) {
    has_deployment = has_deployment || o.value("kind", "") == "Deployment";
  }

  // Never adopt a namespace someone else made: its name may be any DNS label.
  progress.step("checking namespace " + ns);
  IDP_TRY_ASSIGN(auto existing, c->get(namespaces(), "", ns));
  std::optional<ServingTemplate> serving; // what a failed rollout returns to
  bool replaces_deployment = false;
  if (existing) {
    if (managed_by(*existing) != m_opts.server_id) {
      return make_error(ErrorCode::conflict, "namespace " + util::quote(ns) +
                                                 " exists and is not managed by idp server " +
                                                 util::quote(m_opts.server_id) + " (label " + k_label_managed_by + "=" +
                                                 util::quote(managed_by(*existing)) + "); not taking it over");
    }
    if (terminating(*existing)) {
      return make_error(ErrorCode::transient,
                        "namespace " + util::quote(ns) + " is still being deleted; retry when it is gone");
    }
    if (has_deployment) {
      IDP_TRY_ASSIGN(auto previous, c->get(deployments(), ns, k_workload_name));
      if (previous) {
        replaces_deployment = true;
        serving = serving_template(*previous);
      }
    }
  }

  DatabaseRun db;
  IDP_TRY_ASSIGN(objects, render_for_apply(spec, secret_values, files, existing.has_value(), db));
  json* rendered = deployment_in(objects); // the vector is not resized from here on
  std::string serving_dump = serving ? util::json_dump(serving->pod_template) : "";
  if (serving && rendered && serving_dump.size() <= k_max_serving_template) {
    // Written with the new template, in the same object: no moment where the Deployment
    // holds a template that may never serve and has lost the one that did.
    (*rendered)["metadata"]["annotations"][k_annotation_serving_revision] = serving->revision;
    (*rendered)["metadata"]["annotations"][k_annotation_serving_template] = serving_dump;
  } else if (serving) {
    spdlog::warn("kubernetes driver: {}: the serving pod template is {} bytes; not carried (a failed rollout "
                 "cannot go back to it)",
                 ns, serving_dump.size());
    serving.reset();
  }

  // The routing changed since the last apply (the server's `routing` option): the Namespace
  // keeps saying the old one until the old route object is deleted, so a failure on the way
  // leaves the next apply to delete it.
  std::string old_routing = stale_routing(existing ? &*existing : nullptr, objects);
  if (!old_routing.empty()) {
    objects[0]["metadata"]["annotations"][k_annotation_routing] = old_routing;
  }

  progress.revision_status(core::RevisionStatus::starting,
                           "rolling out revision " + std::to_string(spec.revision_id) + " to namespace " + ns);
  // From the moment the Deployment holds the new template, a failure goes back to the one
  // that served, so the Deployment stops trying a revision the environment does not serve
  // (maxUnavailable 0 kept the old pods serving meanwhile). A cancelled apply is left to the
  // newer one, which carries the serving template on.
  bool deployment_applied = false;
  auto roll_back = [&](Error& err) {
    if (!deployment_applied || !rendered || err.code == ErrorCode::cancelled) {
      return;
    }
    if (!serving) {
      if (replaces_deployment) {
        err.message += "; not rolled back: no pod template of this environment is known to have served";
      }
      return;
    }
    json back = *rendered;
    back["spec"]["template"] = serving->pod_template;
    back["metadata"]["annotations"][k_annotation_revision] = serving->revision;
    auto restored = c->apply(back, k_field_manager);
    if (restored) {
      err.message += "; rolled back to the pod template of revision " + serving->revision;
    } else {
      err.message += "; rolling back failed too: " + restored.error().full_message();
    }
  };
  auto fail = [&](Error err) -> Unexpected {
    roll_back(err);
    return Unexpected(err.with_context("environment " + util::quote(ns)));
  };

  progress.phase("prepare");
  progress.step("applying " + std::to_string(objects.size()) + " objects to namespace " + ns);
  for (const auto& obj : objects) {
    auto handled = database_step(obj, spec, db, progress); // waits for the database; runs the seed
    if (!handled) {
      return fail(handled.error());
    }
    if (*handled) {
      continue;
    }
    auto applied = c->apply(obj, k_field_manager);
    if (!applied) {
      return fail(applied.error());
    }
    deployment_applied = deployment_applied || &obj == rendered;
  }
  if (!old_routing.empty()) {
    if (auto removed = remove_old_route(ns, old_routing, progress); !removed) {
      return fail(removed.error());
    }
    objects[0]["metadata"]["annotations"][k_annotation_routing] = m_settings.routing;
    auto marked = c->apply(objects[0], k_field_manager);
    if (!marked) {
      return fail(marked.error());
    }
  }

  // What the pod templates now in place use; on a new namespace nothing else is there.
  auto prune = [&](std::vector<json> keep) {
    if (existing) {
      if (serving) {
        keep.push_back(serving->pod_template);
      }
      prune_unused(ns, keep);
    }
  };
  if (!rendered) {
    // A scheduled worker: the CronJob is in place; its runs are the cluster's business.
    std::vector<json> keep;
    for (const auto& o : objects) {
      if (o.value("kind", "") == "CronJob") {
        keep.push_back(o["spec"]["jobTemplate"]["spec"]["template"]);
      }
    }
    prune(keep);
    ApplyResult result;
    result.outputs = {{"namespace", ns}, {"cronjob", k_cronjob_name}, {"revision", spec.revision_id}};
    return result;
  }
  progress.phase("apply");
  progress.step("waiting for the rollout of revision " + std::to_string(spec.revision_id));
  auto rolled = wait_for_rollout(spec, progress);
  if (!rolled) {
    Error err = rolled.error();
    if (err.code == ErrorCode::cancelled) {
      return Unexpected(err);
    }
    roll_back(err);
    progress.revision_status(core::RevisionStatus::failed, err.message);
    return Unexpected(err.with_context("environment " + util::quote(ns)));
  }
  progress.phase("rollout");
  prune({(*rendered)["spec"]["template"]});
  std::vector<std::string> warnings = is_static_site(spec) ? static_site_warnings(spec) : std::vector<std::string>{};
  if (m_settings.routing == k_routing_gateway) {
    auto problem = check_route(ns, *rolled, progress);
    if (!problem) {
      return Unexpected(problem.error().with_context("environment " + util::quote(ns)));
    }
    if (!problem->empty()) {
      warnings.push_back(*problem);
    }
    progress.phase("route");
  }
  mark_deleting(ns, false);
  ApplyResult result;
  result.url = routing_scheme(m_settings) + environment_host(spec.env, m_settings.domain);
  result.warnings = std::move(warnings);
  result.outputs = {{"namespace", ns}, {"deployment", k_workload_name}, {"revision", spec.revision_id}};
  return result;
}

Expected<std::string> KubernetesDriver::check_route(const std::string& ns, const json& deployment, Progress& progress) {
  IDP_TRY_ASSIGN(KubeClient * c, client());
  progress.step("waiting for Gateway " + m_settings.gateway_namespace + "/" + m_settings.gateway_name +
                " to report on HTTPRoute " + k_workload_name);
  int64_t deadline = util::steady_ms() + m_opts.route_timeout_ms;
  std::string problem;
  while (true) {
    if (progress.cancelled()) {
      return make_error(ErrorCode::cancelled, "the wait for the Gateway's verdict on the route was abandoned");
    }
    IDP_TRY_ASSIGN(auto route, c->get(httproutes(), ns, k_workload_name));
    if (!route) {
      return make_error(ErrorCode::permanent,
                        "HTTPRoute " + util::quote(k_workload_name) + " disappeared after it was applied");
    }
    RouteVerdict v = route_verdict(*route, m_settings);
    if (v.reported) {
      problem = v.problem;
      break;
    }
    if (util::steady_ms() >= deadline) {
      problem = "no controller of Gateway " + m_settings.gateway_namespace + "/" + m_settings.gateway_name +
                " reported on HTTPRoute " + k_workload_name + " within " +
                util::format_duration(m_opts.route_timeout_ms) +
                " (is the Gateway there, with a controller that serves HTTPRoutes?): the URL may not answer";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(m_opts.poll_interval_ms));
  }
  if (annotation_of(deployment, k_annotation_route_problem) != problem) {
    // Its own field manager: the workload's apply neither owns nor removes it, and applying
    // it without the annotation (the route is attached now) removes it.
    json mark = {{"apiVersion", "apps/v1"},
                 {"kind", "Deployment"},
                 {"metadata", {{"name", k_workload_name}, {"namespace", ns}}}};
    if (!problem.empty()) {
      mark["metadata"]["annotations"] = {{k_annotation_route_problem, problem}};
    }
    if (auto marked = c->apply(mark, k_route_field_manager); !marked) {
      spdlog::warn("kubernetes driver: {}: cannot record the route's state on the Deployment: {}", ns,
                   marked.error().full_message());
    }
  }
  if (!problem.empty()) {
    spdlog::warn("kubernetes driver: {}: {}", ns, problem);
  }
  return problem;
}

void KubernetesDriver::prune_unused(const std::string& ns, const std::vector<json>& keep_templates) {
  auto c = client();
  if (!c) {
    return;
  }
  std::set<std::string> keep;
  bool sites = false; // only a pod template with a site has site ConfigMaps to keep
  for (const auto& t : keep_templates) {
    for (auto& name : env_secrets_of(t)) {
      keep.insert(std::move(name));
    }
    for (auto& name : site_configmaps_of(t)) {
      keep.insert(std::move(name));
      sites = true;
    }
  }
  struct Kind {
    const ResourceKind& kind;
    bool (*ours)(const std::string&);
    const char* what;
  };
  std::vector<Kind> kinds = {{secrets(), is_env_secret_name, "variable Secret"}};
  if (sites) {
    kinds.push_back({configmaps(), is_site_configmap_name, "site ConfigMap"});
  }
  for (const auto& k : kinds) {
    auto items = (*c)->list(k.kind, ns, std::string(k_label_environment) + "=" + ns);
    if (!items) {
      spdlog::warn("kubernetes driver: {}: cannot list the {}s to prune: {}", ns, k.what, items.error().full_message());
      continue;
    }
    for (const auto& o : *items) {
      std::string name = o.value("metadata", json::object()).value("name", "");
      if (!k.ours(name) || keep.count(name) || managed_by(o) != m_opts.server_id) {
        continue;
      }
      if (auto removed = (*c)->remove(k.kind, ns, name, "Background"); !removed) {
        spdlog::warn("kubernetes driver: {}: cannot delete {} {} (no pod template uses it): {}", ns, k.what, name,
                     removed.error().full_message());
      }
    }
  }
}

Expected<std::optional<SiteArchive>> KubernetesDriver::read_site(const DeploySpec& spec) const {
  if (!serves_built_directory(spec)) {
    return std::optional<SiteArchive>();
  }
  auto [dir, built] = site_archive_source(spec);
  util::GitMirror mirror(util::path_join(m_ctx.home, "git"), spec.env.repo);
  std::string where = " at commit " + util::short_commit(spec.env.commit, 12);
  if (!built) {
    auto index = mirror.read_file(spec.env.commit, (dir.empty() ? "" : dir + "/") + "index.html");
    if (!index) {
      return Unexpected(index.error().with_context("reading the static site"));
    }
    if (!*index) {
      return make_error(ErrorCode::invalid_config,
                        "static.dir " + util::quote(spec.config.static_site.dir) + " has no index.html" + where +
                            ": without local.build the kubernetes runtime serves static.dir as committed (commit "
                            "the built files, set local.build to build them in the pod, or set container_image)");
    }
  }
  auto tar = mirror.archive(spec.env.commit, dir, static_cast<size_t>(m_opts.static_max_bytes));
  if (!tar) {
    if (tar.error().code == ErrorCode::too_large) {
      return make_error(ErrorCode::permanent,
                        tar.error().message + " (option static_max_bytes): the site's files travel to the cluster in "
                                              "ConfigMaps; for a bigger site set container_image to an image your CI "
                                              "builds with the site in it");
    }
    if (tar.error().code == ErrorCode::not_found) {
      return make_error(ErrorCode::invalid_config,
                        "static.dir " + util::quote(spec.config.static_site.dir) + ": " + tar.error().message);
    }
    return Unexpected(tar.error().with_context("reading the static site"));
  }
  return std::optional<SiteArchive>(SiteArchive{std::move(*tar), built});
}

std::string KubernetesDriver::stale_routing(const json* existing_ns, const std::vector<json>& objects) const {
  bool routed = false;
  for (const auto& o : objects) {
    routed = routed || (o.value("kind", "") == route_kind(m_settings.routing).second);
  }
  if (!existing_ns || !routed) {
    return ""; // a new namespace holds nothing stale; a CronJob has no route
  }
  std::string before = existing_ns->value("metadata", json::object())
                           .value("annotations", json::object())
                           .value(k_annotation_routing, k_routing_ingress); // older namespaces: ingress
  if (before != k_routing_ingress && before != k_routing_gateway) {
    return ""; // not a value we write: nothing known to delete
  }
  return before == m_settings.routing ? "" : before;
}

Expected<void> KubernetesDriver::remove_old_route(const std::string& ns, const std::string& old_routing,
                                                  Progress& progress) {
  IDP_TRY_ASSIGN(KubeClient * c, client());
  auto [api_version, kind] = route_kind(old_routing);
  const ResourceKind& k = kind_of(api_version, kind);
  progress.step("deleting the " + std::string(kind) + " of routing " + old_routing + " (routing is now " +
                m_settings.routing + ")");
  auto removed = c->remove(k, ns, k_workload_name, "Background");
  if (!removed) {
    return Unexpected(removed.error().with_context("environment " + util::quote(ns) + ": removing the " + kind +
                                                   " left by routing " + old_routing));
  }
  if (*removed) {
    spdlog::info("kubernetes driver: deleted {} {}/{} (routing is now {})", kind, ns, k_workload_name,
                 m_settings.routing);
  }
  return {};
}

Expected<json> KubernetesDriver::wait_for_rollout(const DeploySpec& spec, Progress& progress) {
  IDP_TRY_ASSIGN(KubeClient * c, client());
  const std::string& ns = spec.env.name;
  int64_t deadline = util::steady_ms() + m_opts.rollout_timeout_ms;
  std::string last;
  while (true) {
    if (progress.cancelled()) {
      return make_error(ErrorCode::cancelled, "rollout of revision " + std::to_string(spec.revision_id) + " abandoned");
    }
    IDP_TRY_ASSIGN(auto dep, c->get(deployments(), ns, k_workload_name));
    if (!dep) {
      return make_error(ErrorCode::permanent,
                        "deployment " + util::quote(k_workload_name) + " disappeared during the rollout");
    }
    if (rolled_out(*dep)) {
      return *dep;
    }
    std::string exceeded = progress_deadline_exceeded(*dep);
    if (!exceeded.empty() || util::steady_ms() >= deadline) {
      std::string why = exceeded.empty() ? "did not complete within " + util::format_duration(m_opts.rollout_timeout_ms)
                                         : "failed: " + exceeded;
      std::string problems = pod_problems(ns);
      return make_error(ErrorCode::permanent, "rollout of revision " + std::to_string(spec.revision_id) + " " + why +
                                                  (problems.empty() ? "" : ": " + problems));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(m_opts.poll_interval_ms));
  }
}

std::string KubernetesDriver::pod_problems(const std::string& ns) {
  auto c = client();
  if (!c) {
    return "";
  }
  auto items = (*c)->list(pods(), ns, std::string(k_label_environment) + "=" + ns);
  if (!items) {
    return "(the pods could not be listed: " + items.error().message + ")";
  }
  std::vector<std::string> out;
  for (const auto& p : *items) {
    std::string pod = "pod " + p["metadata"].value("name", "") + ": ";
    const json& status = p.value("status", json::object());
    // An init container that fails (a static site's build): its last exit and the
    // termination message it left say why; the app's containers only wait for it.
    for (const auto& cs : status.value("initContainerStatuses", json::array())) {
      const json& state = cs.value("state", json::object());
      const json& ended = state.contains("terminated")
                              ? state["terminated"]
                              : cs.value("lastState", json::object()).value("terminated", json());
      bool failed = ended.is_object() && ended.value("exitCode", 0) != 0;
      const json& waiting = state.value("waiting", json::object());
      if (!failed && (waiting.empty() || waiting.value("reason", "") == "PodInitializing")) {
        continue;
      }
      std::string why = !waiting.empty() ? waiting.value("reason", "waiting") : ended.value("reason", "Error");
      if (failed) {
        std::string msg = util::trim(ended.value("message", ""));
        why += " (exit " + std::to_string(ended.value("exitCode", 0)) + (msg.empty() ? "" : ": " + msg) + ")";
      }
      out.push_back(pod + "init container " + cs.value("name", "") + ": " + why);
    }
    for (const auto& cs : status.value("containerStatuses", json::array())) {
      const json& waiting = cs.value("state", json::object()).value("waiting", json::object());
      if (!waiting.empty() && waiting.value("reason", "") != "PodInitializing") {
        std::string msg = waiting.value("message", "");
        out.push_back(pod + "container " + cs.value("name", "") + ": " + waiting.value("reason", "waiting") +
                      (msg.empty() ? "" : " (" + msg + ")"));
      }
    }
  }
  return util::join(out, "; ");
}

namespace {

// What a Deployment's status says: healthy once the wanted replicas are available.
Observation deployment_observation(const std::string& ns, const json& dep) {
  Observation o;
  const json& st = dep.value("status", json::object());
  int64_t want = dep.value("spec", json::object()).value("replicas", 1);
  int64_t available = num(st, "availableReplicas");
  o.status = {{"namespace", ns},
              {"replicas", want},
              {"available_replicas", available},
              {"updated_replicas", num(st, "updatedReplicas")},
              {"revision", annotation_of(dep, k_annotation_revision)}};
  o.detail = std::to_string(available) + "/" + std::to_string(want) + " pods available";
  o.warnings = deployment_warnings(dep); // what apply warned about (static-site's spa)
  o.health = available >= want && want > 0 ? Health::healthy : Health::unhealthy;
  return o;
}

} // namespace

std::optional<Observation> KubernetesDriver::observe_from_watch(const core::Environment& env) const {
  std::lock_guard lock(m_watch_mu);
  if (!m_watch_synced) {
    return std::nullopt;
  }
  auto it = m_watched.find(env.name);
  if (it == m_watched.end() || managed_by(it->second) != m_opts.server_id || m_deleting.count(env.name) ||
      it->second["metadata"].contains("deletionTimestamp")) {
    return std::nullopt; // being deleted (by us: the namespace goes first), or unknown
  }
  Observation o = deployment_observation(env.name, it->second);
  if (o.health != Health::healthy) {
    return std::nullopt; // the reasons are in the pods: read them
  }
  return o;
}

Expected<Observation> KubernetesDriver::observe(const core::Environment& env) {
  if (argocd_mode()) {
    return observe_argocd(env);
  }
  IDP_TRY_ASSIGN(KubeClient * c, client());
  if (auto watched = observe_from_watch(env)) {
    return *watched;
  }
  Observation o;
  IDP_TRY_ASSIGN(auto ns, c->get(namespaces(), "", env.name));
  if (!ns || managed_by(*ns) != m_opts.server_id) {
    o.health = Health::not_running;
    o.detail = "no namespace " + util::quote(env.name);
    return o;
  }
  if (terminating(*ns)) {
    o.health = Health::not_running;
    o.detail = "namespace " + util::quote(env.name) + " is being deleted";
    return o;
  }
  IDP_TRY_ASSIGN(auto dep, c->get(deployments(), env.name, k_workload_name));
  if (!dep) {
    IDP_TRY_ASSIGN(auto cj, c->get(cronjobs(), env.name, k_cronjob_name));
    if (cj) {
      const json& spec = cj->value("spec", json::object());
      o.health = spec.value("suspend", false) ? Health::stopped : Health::healthy;
      o.detail =
          "cronjob " + util::quote(k_cronjob_name) + " scheduled " + util::quote(spec.value("schedule", "")) + " (UTC)";
      o.status = {{"namespace", env.name},
                  {"schedule", spec.value("schedule", "")},
                  {"last_schedule_time", cj->value("status", json::object()).value("lastScheduleTime", "")}};
      return o;
    }
    o.health = Health::not_running;
    o.detail = "no deployment " + util::quote(k_workload_name) + " in namespace " + util::quote(env.name);
    return o;
  }
  o = deployment_observation(env.name, *dep);
  if (o.health != Health::healthy) {
    std::string problems = pod_problems(env.name);
    if (!problems.empty()) {
      o.detail += ": " + problems;
    }
  }
  return o;
}

Expected<void> KubernetesDriver::destroy(const core::Environment& env, Progress& progress) {
  if (argocd_mode()) {
    return destroy_argocd(env, progress);
  }
  IDP_TRY_ASSIGN(KubeClient * c, client());
  IDP_TRY_ASSIGN(auto ns, c->get(namespaces(), "", env.name));
  if (!ns) {
    return {};
  }
  if (managed_by(*ns) != m_opts.server_id) {
    // Not ours (apply refused to take it over): nothing of the environment is in it.
    return {};
  }
  progress.step("deleting namespace " + env.name);
  mark_deleting(env.name, true);
  IDP_TRY_ASSIGN(bool started, c->remove(namespaces(), "", env.name, "Foreground"));
  if (!started) {
    return {}; // 404: gone between the two requests
  }
  progress.step("waiting for namespace " + env.name + " to be gone");
  int64_t deadline = util::steady_ms() + m_opts.destroy_timeout_ms;
  while (true) {
    IDP_TRY_ASSIGN(auto still, c->get(namespaces(), "", env.name));
    if (!still) {
      return {};
    }
    if (util::steady_ms() >= deadline) {
      return make_error(ErrorCode::timeout, "namespace " + util::quote(env.name) + " still exists " +
                                                util::format_duration(m_opts.destroy_timeout_ms) +
                                                " after its deletion (finalizers pending?)");
    }
    if (progress.cancelled()) {
      return make_error(ErrorCode::cancelled, "waiting for namespace " + util::quote(env.name) + " abandoned");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(m_opts.poll_interval_ms));
  }
}

namespace {

// A log cursor: "<ms>:<n>", the newest line's time read so far and how many lines of that
// very millisecond were read (the next read asks from that second on and drops those).
struct LogCursor {
  util::Millis at = 0;
  size_t seen = 0;
};

Expected<LogCursor> parse_log_cursor(const std::string& text) {
  LogCursor c;
  if (text.empty()) {
    return c;
  }
  auto colon = text.find(':');
  auto digits = [](std::string_view v) {
    return !v.empty() && v.size() <= 18 &&
           std::all_of(v.begin(), v.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
  };
  if (colon == std::string::npos || !digits(std::string_view(text).substr(0, colon)) ||
      !digits(std::string_view(text).substr(colon + 1))) {
    return make_error(ErrorCode::invalid_argument,
                      "log cursor " + util::quote(text) + ": expected the cursor of a previous read");
  }
  c.at = std::stoll(text.substr(0, colon));
  c.seen = static_cast<size_t>(std::stoull(text.substr(colon + 1)));
  return c;
}

} // namespace

Expected<LogChunk> KubernetesDriver::read_logs(const core::Environment& env, const LogQuery& q) {
  IDP_TRY_ASSIGN(KubeClient * c, client());
  IDP_TRY_ASSIGN(LogCursor cursor, parse_log_cursor(q.cursor));
  LogChunk chunk;
  chunk.cursor = q.cursor;
  IDP_TRY_ASSIGN(auto ns, c->get(namespaces(), "", env.name));
  if (!ns || managed_by(*ns) != m_opts.server_id) {
    return chunk;
  }
  // sinceTime has second precision: ask from the second of the cursor (or of q.since) and
  // drop what was read already below.
  util::Millis since = std::max(q.since, cursor.at);
  IDP_TRY_ASSIGN(auto items, c->list(pods(), env.name, std::string(k_label_environment) + "=" + env.name));
  for (const auto& p : items) {
    std::string pod = p["metadata"].value("name", "");
    const json& spec = p.value("spec", json::object());
    std::vector<std::string> containers;
    for (const char* list : {"initContainers", "containers"}) {
      for (const auto& ct : spec.value(list, json::array())) {
        containers.push_back(ct.value("name", ""));
      }
    }
    for (const auto& container : containers) {
      std::string path =
          resource_path(pods(), env.name, pod) + "/log?container=" + util::url_encode(container) + "&timestamps=true";
      if (since > 0) {
        path += "&sinceTime=" + util::url_encode(util::format_iso8601(since / 1000 * 1000));
      }
      if (q.tail > 0) {
        path += "&tailLines=" + std::to_string(q.tail);
      }
      IDP_TRY_ASSIGN(auto r, c->request("GET", path, RequestInfo{"get", "pods/log", env.name, pod}));
      if (r.status == 404 || r.status == 400) {
        continue; // the pod went away, or this container has not started: no log yet
      }
      if (r.status != 200) {
        return Unexpected(
            KubeClient::status_error(r, RequestInfo{"get", "pods/log", env.name, pod}, c->connection().server));
      }
      for (const auto& line : util::split(r.raw, '\n')) {
        if (line.empty()) {
          continue;
        }
        auto space = line.find(' ');
        LogLine l;
        l.stream = container == "app" ? "stdout" : container;
        auto at = space == std::string::npos ? std::nullopt : util::parse_iso8601(line.substr(0, space));
        l.at = at.value_or(0);
        l.text = at ? line.substr(space + 1) : line;
        chunk.lines.push_back(std::move(l));
      }
    }
  }
  std::stable_sort(chunk.lines.begin(), chunk.lines.end(),
                   [](const LogLine& a, const LogLine& b) { return a.at < b.at; });
  // Nothing before q.since, and nothing the cursor says was read (lines at its millisecond
  // come in the same order on every read).
  size_t skip_same = cursor.seen;
  std::erase_if(chunk.lines, [&](const LogLine& l) {
    if (l.at < since) {
      return true;
    }
    if (cursor.at > 0 && l.at == cursor.at && skip_same > 0) {
      skip_same -= 1;
      return true;
    }
    return false;
  });
  if (q.tail > 0 && chunk.lines.size() > q.tail) {
    chunk.lines.erase(chunk.lines.begin(), chunk.lines.end() - static_cast<long>(q.tail));
  }
  if (!chunk.lines.empty()) {
    util::Millis last = chunk.lines.back().at;
    size_t at_last = static_cast<size_t>(
        std::count_if(chunk.lines.begin(), chunk.lines.end(), [&](const LogLine& l) { return l.at == last; }));
    if (last == cursor.at) {
      at_last += cursor.seen;
    }
    chunk.cursor = std::to_string(last) + ":" + std::to_string(at_last);
  }
  return chunk;
}

namespace {

// One container's state as `kubectl describe pod` tells it.
json container_json(const json& cs) {
  json out = {
      {"name", cs.value("name", "")}, {"ready", cs.value("ready", false)}, {"restarts", num(cs, "restartCount")}};
  const json& state = cs.value("state", json::object());
  for (const char* s : {"waiting", "running", "terminated"}) {
    if (state.contains(s) && state[s].is_object()) {
      out["state"] = s;
      out["reason"] = state[s].value("reason", "");
      out["message"] = state[s].value("message", "");
      if (state[s].contains("exitCode")) {
        out["exit_code"] = num(state[s], "exitCode");
      }
    }
  }
  return out;
}

// A pod as one line of `kubectl get pods`: ready containers, the status column (the first
// waiting or failed container's reason, else the phase), restarts.
json pod_json(const json& p) {
  const json& md = p.value("metadata", json::object());
  const json& st = p.value("status", json::object());
  json containers = json::array();
  int64_t ready = 0;
  int64_t restarts = 0;
  std::string reason;
  for (const char* list : {"initContainerStatuses", "containerStatuses"}) {
    for (const auto& cs : st.value(list, json::array())) {
      json c = container_json(cs);
      bool init = std::string_view(list) == "initContainerStatuses";
      c["init"] = init;
      ready += !init && c.value("ready", false) ? 1 : 0;
      restarts += c.value("restarts", int64_t{0});
      bool bad = c.value("state", "") == "waiting" ||
                 (c.value("state", "") == "terminated" && c.value("exit_code", int64_t{0}) != 0);
      if (reason.empty() && bad && !c.value("reason", "").empty()) {
        reason = (init ? "Init:" : "") + c.value("reason", "");
      }
      containers.push_back(std::move(c));
    }
  }
  size_t want = p.value("spec", json::object()).value("containers", json::array()).size();
  if (md.contains("deletionTimestamp")) {
    reason = "Terminating";
  }
  return {{"name", md.value("name", "")},
          {"phase", st.value("phase", "")},
          {"status", reason.empty() ? st.value("phase", "Unknown") : reason},
          {"ready", std::to_string(ready) + "/" + std::to_string(want)},
          {"restarts", restarts},
          {"containers", containers}};
}

// When an event last happened: lastTimestamp (core/v1), else eventTime (events.k8s.io
// writers), else when it was recorded.
std::string event_time(const json& ev) {
  for (const char* k : {"lastTimestamp", "eventTime", "firstTimestamp"}) {
    if (ev.contains(k) && ev[k].is_string() && !ev[k].get<std::string>().empty()) {
      return ev[k].get<std::string>();
    }
  }
  return ev.value("metadata", json::object()).value("creationTimestamp", "");
}

} // namespace

Expected<json> KubernetesDriver::describe(const core::Environment& env) {
  IDP_TRY_ASSIGN(KubeClient * c, client());
  json out = {{"namespace", env.name}, {"pods", json::array()}, {"events", json::array()}};
  IDP_TRY_ASSIGN(auto ns, c->get(namespaces(), "", env.name));
  if (!ns || managed_by(*ns) != m_opts.server_id) {
    out["note"] = "no namespace " + util::quote(env.name) + " of this server on the cluster";
    return out;
  }
  IDP_TRY_ASSIGN(auto items, c->list(pods(), env.name, std::string(k_label_environment) + "=" + env.name));
  for (const auto& p : items) {
    out["pods"].push_back(pod_json(p));
  }
  IDP_TRY_ASSIGN(auto evs, c->list(events(), env.name));
  std::stable_sort(evs.begin(), evs.end(), [](const json& a, const json& b) { return event_time(a) < event_time(b); });
  size_t first = evs.size() > k_max_events ? evs.size() - k_max_events : 0;
  for (size_t i = first; i < evs.size(); ++i) {
    const json& ev = evs[i];
    const json& obj = ev.value("involvedObject", json::object());
    out["events"].push_back({{"at", event_time(ev)},
                             {"type", ev.value("type", "")},
                             {"reason", ev.value("reason", "")},
                             {"object", obj.value("kind", "") + "/" + obj.value("name", "")},
                             {"message", ev.value("message", "")},
                             {"count", std::max<int64_t>(num(ev, "count"), 1)}});
  }
  return out;
}

Expected<util::Command> KubernetesDriver::kubectl_exec(const core::Environment& env,
                                                       const std::vector<std::string>& argv, bool tty) {
  if (argv.empty()) {
    return make_error(ErrorCode::invalid_argument, "exec needs a command");
  }
  if (env.template_name == "scheduled-worker") {
    return make_error(ErrorCode::invalid_argument, "environment " + util::quote(env.name) +
                                                       " is a scheduled worker: on Kubernetes its runs are Jobs of "
                                                       "the CronJob, with no container to exec into between runs");
  }
  IDP_TRY_ASSIGN(KubeClient * c, client());
  auto kubectl = util::find_executable(m_opts.kubectl);
  if (!kubectl) {
    return make_error(ErrorCode::invalid_argument,
                      "exec on the kubernetes runtime runs `kubectl exec`, and " + util::quote(m_opts.kubectl) +
                          " is not on the server's PATH: install kubectl, or set drivers.kubernetes.kubectl");
  }
  util::Command cmd;
  cmd.argv = {*kubectl};
  if (!m_opts.in_cluster) {
    // The same cluster and user as the driver's own requests (kubectl reads $KUBECONFIG
    // itself when no file was named).
    if (!m_opts.kubeconfig.empty()) {
      cmd.argv.insert(cmd.argv.end(), {"--kubeconfig", m_opts.kubeconfig});
    }
    if (!c->connection().context.empty()) {
      cmd.argv.insert(cmd.argv.end(), {"--context", c->connection().context});
    }
  }
  cmd.argv.insert(cmd.argv.end(), {"exec", "--namespace", env.name, std::string("deployment/") + k_workload_name,
                                   "--container", "app", "--stdin"});
  if (tty) {
    cmd.argv.push_back("--tty");
  }
  cmd.argv.push_back("--");
  cmd.argv.insert(cmd.argv.end(), argv.begin(), argv.end());
  return cmd;
}

Expected<json> KubernetesDriver::exec(const core::Environment& env, const std::vector<std::string>& argv) {
  IDP_TRY_ASSIGN(util::Command cmd, kubectl_exec(env, argv, false));
  util::RunOptions ro;
  ro.timeout_ms = 60000; // as the local runtime's one-shot exec
  ro.max_capture = 1024 * 1024;
  IDP_TRY_ASSIGN(auto r, util::run(cmd, ro));
  return json{{"exit_code", r.exit_code},
              {"signal", r.signal},
              {"timed_out", r.timed_out},
              {"stdout", r.out},
              {"stderr", r.err}};
}

Expected<std::unique_ptr<ExecProcess>> KubernetesDriver::start_exec(const core::Environment& env,
                                                                    const ExecRequest& req) {
  IDP_TRY_ASSIGN(util::Command cmd, kubectl_exec(env, req.argv, req.tty));
  util::InteractiveOptions io;
  io.tty = req.tty;
  io.rows = req.rows;
  io.cols = req.cols;
  return start_interactive_exec(cmd, io);
}

} // namespace idp::drivers::kubernetes
