#include "drivers/kubernetes/manifests.hpp"

#include <cctype>
#include <optional>

#include "core/schedule.hpp"
#include "drivers/kubernetes/manifests_routing.hpp"
#include "drivers/kubernetes/manifests_static.hpp"
#include "util/git.hpp"
#include "util/hash.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::drivers::kubernetes {

namespace {

using json = nlohmann::json;

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

// ECS CPU units (1024 = one vCPU) as Kubernetes millicores.
std::string cpu_quantity(int units) { return std::to_string(std::max(1, units * 1000 / 1024)) + "m"; }
std::string cpu_quantity_times(int units, int n) { return std::to_string(std::max(1, units * 1000 / 1024) * n) + "m"; }
std::string memory_quantity(int mib) { return std::to_string(mib) + "Mi"; }

json common_labels(const DeploySpec& spec, const RenderSettings& s) {
  return {
      {k_label_environment, spec.env.name}, {k_label_managed_by, s.server_id}, {"app.kubernetes.io/managed-by", "idp"}};
}

json object(const std::string& api_version, const std::string& kind, const std::string& name, const std::string& ns,
            const json& labels) {
  json md = {{"name", name}, {"labels", labels}};
  if (!ns.empty()) {
    md["namespace"] = ns;
  }
  return {{"apiVersion", api_version}, {"kind", kind}, {"metadata", md}};
}

Expected<std::string> schedule_error(std::string_view expr, const std::string& why) {
  return make_error(ErrorCode::invalid_config,
                    "schedule_expression " + util::quote(expr) + " cannot run on the kubernetes runtime: " + why);
}

// One cron field token list with "a/b" (a number start) made "a-<max>/b", the form every
// cron implementation reads the same way.
std::string normalise_steps(const std::string& field, int max) {
  std::vector<std::string> out;
  for (const auto& part : util::split(field, ',')) {
    auto slash = part.find('/');
    std::string start = slash == std::string::npos ? "" : part.substr(0, slash);
    bool numeric = !start.empty() && start.find_first_not_of("0123456789") == std::string::npos;
    out.push_back(numeric ? start + "-" + std::to_string(max) + part.substr(slash) : part);
  }
  return util::join(out, ",");
}

// EventBridge day-of-week numbers are 1 (SUN) to 7 (SAT); cron's are 0 to 6.
std::string shift_weekdays(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    char c = field[i];
    bool digit = c >= '1' && c <= '7';
    bool alone = (i == 0 || !std::isalnum(static_cast<unsigned char>(field[i - 1]))) &&
                 (i + 1 == field.size() || !std::isalnum(static_cast<unsigned char>(field[i + 1])));
    out += digit && alone ? static_cast<char>(c - 1) : c;
  }
  return out;
}

} // namespace

Expected<std::string> cronjob_schedule(std::string_view expression) {
  IDP_TRY_ASSIGN(core::Schedule sched, core::Schedule::parse(expression));
  if (sched.is_rate()) {
    int64_t minutes = sched.rate_ms() / 60000;
    if (minutes < 60 && 60 % minutes == 0) {
      return minutes == 1 ? std::string("* * * * *") : "*/" + std::to_string(minutes) + " * * * *";
    }
    if (minutes % 60 == 0 && minutes / 60 < 24 && 24 % (minutes / 60) == 0) {
      int64_t hours = minutes / 60;
      return hours == 1 ? std::string("0 * * * *") : "0 */" + std::to_string(hours) + " * * *";
    }
    if (minutes == 24 * 60) {
      return std::string("0 0 * * *");
    }
    return schedule_error(expression,
                          "a CronJob repeats within the hour or the day, so the interval must divide an "
                          "hour (minutes) or a day (hours), or be 1 day; write a cron() expression instead");
  }
  std::string e(expression);
  auto open = e.find('(');
  auto close = e.rfind(')');
  std::vector<std::string> fields;
  for (const auto& f : util::split(util::trim(e.substr(open + 1, close - open - 1)), ' ')) {
    if (!f.empty()) {
      fields.push_back(f);
    }
  }
  if (fields.size() != 6) {
    return schedule_error(expression, "expected 6 fields");
  }
  const std::string& dom = fields[2];
  const std::string& dow = fields[4];
  for (const std::string* f : {&dom, &dow}) {
    if (f->find_first_of("LW#") != std::string::npos && *f != "?") {
      return schedule_error(expression, "L, W and # (last, weekday, nth weekday) have no CronJob equivalent");
    }
  }
  if (fields[5] != "*") {
    return schedule_error(expression, "a CronJob has no year field; the year must be *");
  }
  std::string cron_dom = dom == "?" ? "*" : normalise_steps(dom, 31);
  std::string cron_dow = dow == "?" ? "*" : shift_weekdays(dow);
  return normalise_steps(fields[0], 59) + " " + normalise_steps(fields[1], 23) + " " + cron_dom + " " +
         normalise_steps(fields[3], 12) + " " + cron_dow;
}

std::string label_value(const std::string& value) {
  std::string out;
  for (char c : value) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    out += ok ? c : '_';
  }
  if (out.size() > 63) {
    out.resize(63);
  }
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.front()))) {
    out.erase(out.begin());
  }
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.back()))) {
    out.pop_back();
  }
  return out;
}

std::string environment_host(const core::Environment& env, const std::string& domain) {
  return env.name + "." + domain;
}

std::string image_for(const DeploySpec& spec) {
  std::string image = spec.config.container_image;
  std::string branch;
  for (char c : spec.env.branch) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    branch += ok ? c : '-';
  }
  replace_all(image, "{commit}", spec.env.commit);
  replace_all(image, "{branch}", branch);
  return image;
}

std::string annotation_of(const json& obj, const char* key) {
  const json& ann = obj.value("metadata", json::object()).value("annotations", json::object());
  auto it = ann.find(key);
  return it != ann.end() && it->is_string() ? it->get<std::string>() : "";
}

bool is_env_secret_name(const std::string& name) {
  std::string prefix = std::string(k_env_secret) + "-";
  return name == k_env_secret || name.rfind(prefix, 0) == 0;
}

std::vector<std::string> env_secrets_of(const json& pod_template) {
  std::vector<std::string> out;
  const json& spec = pod_template.is_object() ? pod_template.value("spec", json::object()) : json::object();
  for (const char* list : {"initContainers", "containers"}) {
    for (const auto& c : spec.value(list, json::array())) {
      for (const auto& from : c.value("envFrom", json::array())) {
        std::string name = from.value("secretRef", json::object()).value("name", "");
        if (!name.empty()) {
          out.push_back(name);
        }
      }
    }
  }
  return out;
}

Expected<std::vector<json>> render_environment(const DeploySpec& spec, const RenderSettings& s,
                                               const std::map<std::string, std::string>& secret_values,
                                               const SiteArchive* site) {
  const std::string& ns = spec.env.name;
  bool web = false;
  bool schedule = false;
  bool database = false;
  for (const auto& c : spec.components) {
    if (c == "web" || c == "static") {
      web = true; // static-site: a web server serving the built files (manifests_static.hpp)
    } else if (c == "database") {
      database = true;
    } else if (c == "schedule") {
      schedule = true;
    } else {
      return make_error(ErrorCode::invalid_config,
                        "template " + util::quote(spec.env.template_name) + " needs component " + util::quote(c) +
                            ", which the kubernetes runtime does not support yet (it runs api-service, "
                            "api-database, scheduled-worker and static-site)");
    }
  }
  if (web == schedule) {
    return make_error(ErrorCode::invalid_config, "template " + util::quote(spec.env.template_name) +
                                                     ": the kubernetes runtime runs either a web component or a "
                                                     "schedule component");
  }
  if (web) {
    IDP_TRY(check_routing(s));
  }
  if (is_static_site(spec)) {
    IDP_TRY(check_static_site(spec));
  }
  std::string cron;
  if (schedule) {
    IDP_TRY_ASSIGN(cron, cronjob_schedule(spec.config.schedule_expression));
  }
  if (spec.config.cpu <= 0 || spec.config.memory <= 0) {
    return make_error(ErrorCode::invalid_config, "cpu and memory must be positive for the kubernetes runtime");
  }
  std::string image = image_for(spec);
  int port = spec.config.container_port;
  if (image.empty() || image.find(' ') != std::string::npos) {
    return make_error(ErrorCode::invalid_config,
                      "container_image: expected an image reference, got " + util::quote(image));
  }
  // Room in the quota for the database's pod and its seed Job's too.
  IDP_TRY_ASSIGN(std::vector<json> out, render_namespace_objects(spec, s, secret_values, database ? 2 : 0));
  json labels = common_labels(spec, s);
  if (web) {
    // The routing this apply uses: the next apply with another one removes this one's route.
    out[0]["metadata"]["annotations"][k_annotation_routing] = s.routing;
  }
  json container_resources = {
      {"requests", {{"cpu", cpu_quantity(spec.config.cpu)}, {"memory", memory_quantity(spec.config.memory)}}},
      {"limits", {{"cpu", cpu_quantity(spec.config.cpu)}, {"memory", memory_quantity(spec.config.memory)}}}};
  json data = out.back()["stringData"]; // the variables' Secret
  if (database) {
    // The database's objects go before the app's Secret, and its variables win over the
    // config's.
    json secret = out.back();
    out.pop_back();
    IDP_TRY_ASSIGN(DatabaseObjects db, render_database(spec, s, labels, container_resources));
    out.insert(out.end(), db.objects.begin(), db.objects.end());
    for (const auto& [k, v] : db.env) {
      data[k] = v;
    }
    secret["stringData"] = data;
    out.push_back(secret);
  }

  std::string env_hash = util::sha256_hex(util::json_dump(data)).substr(0, 16);
  // Named by its data: a new Secret for every change, the old one left for the pod
  // template that uses it (the driver prunes those no template uses).
  std::string env_secret = std::string(k_env_secret) + "-" + env_hash;
  out.back()["metadata"]["name"] = env_secret;
  if (schedule) {
    // scheduled-worker: a CronJob in UTC; one run at a time, as the other runtimes do.
    json job_labels = labels;
    job_labels["app.kubernetes.io/name"] = k_cronjob_name;
    json cj = object("batch/v1", "CronJob", k_cronjob_name, ns, labels);
    cj["metadata"]["annotations"] = {{"idp.dev/revision", std::to_string(spec.revision_id)},
                                     {"idp.dev/schedule-expression", spec.config.schedule_expression}};
    cj["spec"] = {{"schedule", cron},
                  {"timeZone", "Etc/UTC"},
                  {"concurrencyPolicy", "Forbid"},
                  {"startingDeadlineSeconds", 300},
                  {"successfulJobsHistoryLimit", 3},
                  {"failedJobsHistoryLimit", 3},
                  {"jobTemplate",
                   {{"metadata", {{"labels", job_labels}}},
                    {"spec",
                     {{"backoffLimit", 0},
                      {"template",
                       {{"metadata",
                         {{"labels", job_labels},
                          {"annotations", {{"idp.dev/commit", spec.env.commit}, {"idp.dev/env-hash", env_hash}}}}},
                        {"spec",
                         {{"restartPolicy", "Never"},
                          {"serviceAccountName", "app"},
                          {"automountServiceAccountToken", false},
                          {"enableServiceLinks", false},
                          {"containers",
                           {{{"name", "app"},
                             {"image", image},
                             {"envFrom", {{{"secretRef", {{"name", env_secret}}}}}},
                             {"resources", container_resources},
                             {"securityContext", {{"allowPrivilegeEscalation", false}}}}}}}}}}}}}}};
    out.push_back(cj);
    return out;
  }

  // api-service and static-site: Deployment + Service + Ingress or HTTPRoute. A static
  // site's image serves files: no PORT to tell it, and "/" is its health check.
  bool static_site = is_static_site(spec);
  std::optional<StaticSiteObjects> files; // the built directory, served by the runtime's web server
  if (serves_built_directory(spec)) {
    IDP_TRY_ASSIGN(files,
                   render_static_site(spec, s, site ? *site : SiteArchive{}, labels, env_secret, container_resources));
    image = s.static_image;
    port = 80;
  }
  json sel = {{"app.kubernetes.io/name", k_workload_name}, {k_label_environment, spec.env.name}};
  json pod_labels = labels;
  pod_labels.update(sel);
  json probe = {
      {"httpGet", {{"path", static_site ? std::string("/") : spec.config.health_check_path}, {"port", "http"}}},
      {"periodSeconds", 5},
      {"timeoutSeconds", 2}};
  json readiness = probe;
  readiness["failureThreshold"] = 3;
  json liveness = probe;
  liveness["initialDelaySeconds"] = 10;
  liveness["failureThreshold"] = 6;
  json container = {
      {"name", "app"},
      {"image", image},
      {"ports", {{{"name", "http"}, {"containerPort", port}, {"protocol", "TCP"}}}},
      {"env", {{{"name", "PORT"}, {"value", std::to_string(port)}}}},
      {"envFrom", {{{"secretRef", {{"name", env_secret}}}}}},
      {"readinessProbe", readiness},
      {"livenessProbe", liveness},
      {"resources", container_resources},
      {"securityContext", {{"allowPrivilegeEscalation", false}}},
  };
  if (static_site) {
    container.erase("env");
  }
  json pod_annotations = {{"idp.dev/revision", std::to_string(spec.revision_id)},
                          {"idp.dev/commit", spec.env.commit},
                          {"idp.dev/env-hash", env_hash}};
  json pod_spec = {{"serviceAccountName", "app"},
                   {"automountServiceAccountToken", false},
                   {"enableServiceLinks", false},
                   {"containers", json::array({container})}};
  if (files) {
    pod_annotations["idp.dev/site-hash"] = files->site_hash;
    pod_spec["containers"][0]["volumeMounts"] = files->mounts;
    pod_spec["initContainers"] = json::array({files->init_container});
    pod_spec["volumes"] = files->volumes;
    out.insert(out.end(), files->configmaps.begin(), files->configmaps.end());
  }
  json dep = object("apps/v1", "Deployment", k_workload_name, ns, labels);
  // A changed Secret rolls the pods: its hash is part of the pod template.
  dep["spec"] = {
      {"replicas", s.replicas},
      {"revisionHistoryLimit", 5},
      {"progressDeadlineSeconds", 600},
      {"selector", {{"matchLabels", sel}}},
      {"strategy", {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxUnavailable", 0}, {"maxSurge", 1}}}}},
      {"template", {{"metadata", {{"labels", pod_labels}, {"annotations", pod_annotations}}}, {"spec", pod_spec}}}};
  dep["metadata"]["annotations"] = {{"idp.dev/revision", std::to_string(spec.revision_id)}};
  if (auto warnings = static_site ? static_site_warnings(spec) : std::vector<std::string>{}; !warnings.empty()) {
    dep["metadata"]["annotations"][k_annotation_warnings] = util::json_dump(json(warnings));
  }
  out.push_back(dep);

  json svc = object("v1", "Service", k_workload_name, ns, labels);
  svc["spec"] = {{"type", "ClusterIP"},
                 {"selector", sel},
                 {"ports", {{{"name", "http"}, {"port", 80}, {"targetPort", "http"}, {"protocol", "TCP"}}}}};
  out.push_back(svc);

  out.push_back(render_route(spec, s, labels));
  return out;
}

Expected<std::vector<json>> render_namespace_objects(const DeploySpec& spec, const RenderSettings& s,
                                                     const std::map<std::string, std::string>& secret_values,
                                                     int extra_pods) {
  if (spec.config.cpu <= 0 || spec.config.memory <= 0) {
    return make_error(ErrorCode::invalid_config, "cpu and memory must be positive for the kubernetes runtime");
  }
  const std::string& ns = spec.env.name;
  json labels = common_labels(spec, s);
  std::vector<json> out;

  // Namespace: who owns it and when it expires, for people looking at the cluster.
  json nsl = labels;
  std::string owner = label_value(spec.env.owner);
  if (!owner.empty()) {
    nsl[k_label_owner] = owner;
  }
  json nso = object("v1", "Namespace", ns, "", nsl);
  nso["metadata"]["annotations"] = json::object();
  if (spec.env.expires_at > 0) {
    nso["metadata"]["annotations"][k_annotation_expires_at] = util::format_iso8601(spec.env.expires_at);
  }
  if (!spec.env.owner.empty()) {
    nso["metadata"]["annotations"][k_label_owner] = spec.env.owner; // the label is a sanitised copy
  }
  if (!spec.env.repo.empty()) {
    nso["metadata"]["annotations"]["idp.dev/repository"] = util::strip_url_credentials(spec.env.repo);
  }
  out.push_back(nso);

  // Room for a rolling update: the old and the new pods side by side (and `extra_pods`:
  // the database's pod and its seed Job's, which take the app's cpu and memory too).
  int pods = s.replicas * 2 + extra_pods;
  json quota = object("v1", "ResourceQuota", "idp-quota", ns, labels);
  quota["spec"] = {{"hard",
                    {{"requests.cpu", cpu_quantity_times(spec.config.cpu, pods)},
                     {"requests.memory", memory_quantity(spec.config.memory * pods)},
                     {"limits.cpu", cpu_quantity_times(spec.config.cpu, pods)},
                     {"limits.memory", memory_quantity(spec.config.memory * pods)},
                     {"pods", std::to_string(pods + 2)}}}};
  out.push_back(quota);

  json limits = object("v1", "LimitRange", "idp-limits", ns, labels);
  limits["spec"] = {
      {"limits",
       {{{"type", "Container"},
         {"default", {{"cpu", cpu_quantity(spec.config.cpu)}, {"memory", memory_quantity(spec.config.memory)}}},
         {"defaultRequest", {{"cpu", cpu_quantity(spec.config.cpu)}, {"memory", memory_quantity(spec.config.memory)}}},
         {"max", {{"cpu", cpu_quantity(spec.config.cpu)}, {"memory", memory_quantity(spec.config.memory)}}}}}}};
  out.push_back(limits);

  // Default deny for ingress: only the ingress controller's (or the gateway's) namespace
  // and the environment's own pods (an app talking to its database) may connect.
  json netpol = object("networking.k8s.io/v1", "NetworkPolicy", "idp-default-deny", ns, labels);
  netpol["spec"] = {
      {"podSelector", json::object()},
      {"policyTypes", {"Ingress"}},
      {"ingress",
       {{{"from",
          {{{"namespaceSelector", {{"matchLabels", {{"kubernetes.io/metadata.name", routing_source_namespace(s)}}}}}},
           {{"podSelector", json::object()}}}}}}}};
  if (spec.env.untrusted()) {
    // A fork's pull request (the untrusted profile): no way out but the cluster's DNS, its
    // own namespace (its database) and the networks of forks.egress_cidrs (a registry
    // mirror, an egress proxy). A NetworkPolicy selects addresses, not host names: the
    // local runtime's allowlist of registry names has no equivalent here.
    netpol["spec"]["policyTypes"] = {"Ingress", "Egress"};
    netpol["spec"]["egress"] = {
        {{"to",
          {{{"namespaceSelector", {{"matchLabels", {{"kubernetes.io/metadata.name", "kube-system"}}}}},
            {"podSelector", {{"matchLabels", {{"k8s-app", "kube-dns"}}}}}}}},
         {"ports", {{{"protocol", "UDP"}, {"port", 53}}, {{"protocol", "TCP"}, {"port", 53}}}}},
        {{"to", {{{"podSelector", json::object()}}}}}};
    if (!s.untrusted_egress_cidrs.empty()) {
      json to = json::array();
      for (const auto& cidr : s.untrusted_egress_cidrs) {
        to.push_back({{"ipBlock", {{"cidr", cidr}}}});
      }
      netpol["spec"]["egress"].push_back({{"to", to}});
    }
  }
  out.push_back(netpol);

  json sa = object("v1", "ServiceAccount", "app", ns, labels);
  sa["automountServiceAccountToken"] = false;
  out.push_back(sa);

  json data = json::object();
  for (const auto& [k, v] : spec.config.environment) {
    data[k] = v;
  }
  for (const auto& [k, v] : secret_values) {
    data[k] = v;
  }
  json secret = object("v1", "Secret", k_env_secret, ns, labels);
  secret["type"] = "Opaque";
  secret["stringData"] = data;
  out.push_back(secret);
  return out;
}

} // namespace idp::drivers::kubernetes
