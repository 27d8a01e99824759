#pragma once
// Driver: how an environment becomes real on one runtime (local processes, Terraform, ...).
// Every operation is idempotent: calling it again after a crash at any point converges.
// Errors carry a kind (ErrorCode::invalid_config | transient | timeout | conflict |
// permanent); the engine, not the driver, decides about retries and backoff.
// Every driver passes tests/contract/driver_contract.hpp.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/app_config.hpp"
#include "core/environment.hpp"
#include "core/preview_routes.hpp"
#include "core/wake_board.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::drivers {

// An `idp exec` session's command: argv (never through a shell), with a terminal or pipes.
struct ExecRequest {
  std::vector<std::string> argv;
  bool tty = false; // a pseudo-terminal: stdin, stdout and stderr are one terminal
  unsigned short rows = 24;
  unsigned short cols = 80;
};

// The running command of an exec session (Driver::start_exec). Destroying it stops what
// is left of the command: nothing it started outlives it. read is for one thread; the
// other calls are thread-safe.
class ExecProcess {
public:
  virtual ~ExecProcess() = default;
  // Output that arrives within timeout_ms (possibly none): {stream: stdout|stderr, bytes}.
  virtual std::vector<std::pair<std::string, std::string>> read(int64_t timeout_ms) = 0;
  // True once the command's output is at its end.
  virtual bool output_done() const = 0;
  // Input: timeout when the command does not read it, io_error once closed.
  virtual Expected<void> write_input(std::string_view data, int64_t timeout_ms) = 0;
  virtual void close_input() = 0;
  // invalid_argument without a terminal.
  virtual Expected<void> resize(unsigned short rows, unsigned short cols) = 0;
  // Signals the command and everything it started.
  virtual void signal(int sig) = 0;
  // nullopt while it runs; then {exit_code (-1 when killed), signal}.
  virtual std::optional<std::pair<int, int>> poll_exit() = 0;
};

// What to bring about: this environment running `env.commit` with `config`.
struct DeploySpec {
  core::Environment env;
  core::AppConfig config;
  int64_t revision_id = 0; // the revision's number within the environment (1, 2, 3…)
  // What the template composes: "web" (a process behind the router with a health check),
  // "static" (files behind the router), "database", "schedule". From templates/<name>/template.json.
  std::vector<std::string> components = {"web"};
  // Template-specific values (e.g. the database credentials a driver must inject).
  nlohmann::json template_values = nlohmann::json::object();
  // The template's directory as the daemon's catalog resolved it (--templates-dir,
  // templates_path:); drivers take the template's parts from here, so they never pick
  // another template of the same name. "" only in driver tests: the driver looks it up.
  std::string template_dir;
};

// How a driver reports while it works. Implementations are thread-safe.
class Progress {
public:
  virtual ~Progress() = default;
  // A short human description of the current step ("building", "waiting for /health").
  virtual void step(std::string_view what) = 0;
  // The revision moved to a new status.
  virtual void revision_status(core::RevisionStatus status, std::string_view message) = 0;
  // A phase of the deploy ended now; it began where the previous one ended (the first at
  // the start of apply). The telemetry of every deploy (`idp status`, the events,
  // /metrics). local: prepare, checkout, database, build, start, healthy, route;
  // terraform: prepare, init, apply, output; kubernetes: prepare, apply, rollout, route.
  virtual void phase(std::string_view name) { (void)name; }
  // True when the engine wants the operation abandoned (superseded or shutting down).
  virtual bool cancelled() const = 0;
  // The cancellation flag, for subprocesses.
  virtual const std::atomic<bool>* cancel_flag() const = 0;
};

struct ApplyResult {
  std::string url;
  nlohmann::json outputs = nlohmann::json::object(); // e.g. pid, port, ARNs
  std::vector<std::string> warnings;
};

// not_running: it should run and does not (a crash). stopped: the runtime stopped it on
// purpose when the server stopped; applying the same revision again starts it (not a crash).
// asleep: stopped on purpose by sleep() (idle sleep); applying the serving revision again wakes it.
enum class Health { healthy, unhealthy, not_running, stopped, asleep, unknown };

struct Observation {
  Health health = Health::unknown;
  std::string detail;
  std::vector<std::string> warnings;
  nlohmann::json status = nlohmann::json::object(); // runtime details for `idp status`
};

struct LogLine {
  util::Millis at = 0;
  std::string stream; // "stdout" | "stderr" | "system"
  std::string text;
};

struct LogQuery {
  util::Millis since = 0; // only lines at or after this time
  size_t tail = 0;        // only the last N lines (0 = all)
  std::string cursor;     // resume after a previous read (from LogChunk::cursor)
};

struct LogChunk {
  std::vector<LogLine> lines;
  std::string cursor; // pass back to get only newer lines
};

// What an environment uses at one moment (Driver::usage).
struct Usage {
  bool running = false; // its app is up: the config's cpu and memory are reserved
  // Cumulative CPU seconds by counter (one per cgroup): the sampler charges the growth of
  // each since its last pass, and a new counter's whole value.
  std::map<std::string, double> cpu_seconds;
  int64_t memory_bytes = 0;  // in use now (all its groups)
  bool measured = false;     // cpu_seconds and memory_bytes are the runtime's own counters
  int64_t storage_bytes = 0; // its database's size
};

class Driver {
public:
  virtual ~Driver() = default;
  virtual std::string_view name() const = 0;

  // Starts what the runtime needs (e.g. the router) and recovers after a restart:
  // re-adopts what still runs for `live` environments, removes anything belonging to
  // environments not in `live`.
  virtual Expected<void> start(const std::vector<core::Environment>& live) = 0;
  // Stops what start() started. With keep_running, environments stay up.
  virtual void stop(bool keep_running) = 0;

  // Checks that the config can run on this runtime (invalid_config otherwise). No side effects.
  virtual Expected<void> plan(const DeploySpec& spec) = 0;
  // Brings the environment to spec. When another revision serves, switches without
  // downtime and keeps the old one serving if the new one fails.
  virtual Expected<ApplyResult> apply(const DeploySpec& spec, Progress& progress) = 0;
  // Current health of what serves the environment.
  virtual Expected<Observation> observe(const core::Environment& env) = 0;
  // Removes everything of the environment. ok when nothing is left (also when nothing was there).
  virtual Expected<void> destroy(const core::Environment& env, Progress& progress) = 0;
  // The environment's application log.
  virtual Expected<LogChunk> read_logs(const core::Environment& env, const LogQuery& q) = 0;
  // What the runtime shows of the environment now, for `idp status` (the kubernetes
  // runtime: its pods and the namespace's events). An empty object when there is nothing
  // more to show than the store has.
  virtual Expected<nlohmann::json> describe(const core::Environment& env) {
    (void)env;
    return nlohmann::json::object();
  }
  // Breaks a stuck lock of the runtime (e.g. a Terraform state lock). ok when none.
  virtual Expected<std::string> unlock(const core::Environment& env) {
    return std::string("no runtime lock to break for driver ") + std::string(name());
  }
  // Runs a command in the environment (idp exec). Result: exit code, output.
  virtual Expected<nlohmann::json> exec(const core::Environment& env, const std::vector<std::string>& argv) {
    return make_error(ErrorCode::invalid_argument, "exec is not supported by driver " + std::string(name()));
  }
  // Starts an interactive command in the environment (idp exec sessions): its output is
  // read as it comes, its input written. invalid_argument when the runtime has no exec.
  virtual Expected<std::unique_ptr<ExecProcess>> start_exec(const core::Environment& env, const ExecRequest& req) {
    (void)req;
    // A runtime whose exec refuses says why in its own words (terraform: use ECS Exec).
    return exec(env, {}).and_then([this](const nlohmann::json&) -> Expected<std::unique_ptr<ExecProcess>> {
      return make_error(ErrorCode::invalid_argument, "exec is not supported by driver " + std::string(name()));
    });
  }
  // The manifests `spec` would be applied as, as text (idp render), without touching any
  // infrastructure. invalid_argument for a runtime with nothing to show.
  virtual Expected<std::string> render(const DeploySpec& spec) const {
    (void)spec;
    return make_error(ErrorCode::invalid_argument,
                      "render is not supported by driver " + std::string(name()) + " (the kubernetes runtime has it)");
  }
  // What the environment uses now, for the daemon's usage sampler (issue 12, cost).
  // nullopt (the default): this runtime measures nothing; the sampler counts the config's
  // cpu and memory as reserved while the environment is ready or updating.
  virtual Expected<std::optional<Usage>> usage(const core::Environment& env) { return std::optional<Usage>(); }
  // Idle sleep (issue 12): stops the environment's processes and leaves its database,
  // files and URL; its URL then leads to the daemon's wake handler, and observe() says
  // Health::asleep. Applying the serving revision again (the engine's wake) starts it.
  // Idempotent. invalid_argument when the runtime cannot (the message says why).
  virtual Expected<void> sleep(const core::Environment& env, Progress& progress) {
    (void)progress;
    (void)env;
    return make_error(ErrorCode::invalid_argument, "sleep is not supported by driver " + std::string(name()));
  }
  // When the environment's URL was last requested, as far as the runtime knows (the local
  // router's access log); nullopt when it has seen none or cannot tell.
  virtual Expected<std::optional<util::Millis>> last_request(const core::Environment& env) {
    (void)env;
    return std::optional<util::Millis>();
  }
  // Cost so far (idp cost).
  virtual Expected<nlohmann::json> cost(const core::Environment& env) {
    return make_error(ErrorCode::invalid_argument, "cost is not supported by driver " + std::string(name()));
  }
};

// What every driver gets from the daemon.
// Where a driver that runs scheduled jobs itself records their runs (the store's
// job_runs). An unset function means not recorded. Thread-safe.
struct JobRunHooks {
  std::function<Expected<int64_t>(const core::JobRun&)> insert; // returns the new run's id
  std::function<Expected<void>(const core::JobRun&)> update;
  // The newest `limit` runs of an environment, newest first (crash recovery).
  std::function<Expected<std::vector<core::JobRun>>(const std::string& env, size_t limit)> list;
};

// HTTPS for the environments a router serves (server config `https`). Off: plain HTTP.
struct HttpsContext {
  std::string mode = "off"; // off | internal | acme
  int port = 0;             // the port of https:// URLs
  std::string acme_email;
  std::string acme_ca;      // the ACME directory URL; "" = Let's Encrypt
  std::string acme_ca_root; // PEM roots for acme_ca's TLS; "" = the system's
  std::string ask_url;      // asked before each certificate (GET ?domain=<host>)
  std::string api_host;     // "idp.<domain>": served by the router, proxied to...
  std::string api_upstream; // ...the daemon's API, "127.0.0.1:<port>"
  bool on() const { return mode == "internal" || mode == "acme"; }
};

// The server's secret store (issue 9), for drivers that inject secrets themselves. Thread-safe.
struct SecretHooks {
  // The value of store secret `name` for an environment of repository `repo`:
  // invalid_config when the store has none of that name, or it is not for that repository
  // (the message names both, never a value). Unset: the server has no secret store.
  std::function<Expected<std::string>(const std::string& repo, const std::string& name)> resolve;
};

// Preview URLs behind sign-in (server config `previews:`, issue 15), for runtimes whose
// router can ask the daemon before proxying (local: Caddy's forward_auth).
struct PreviewAccess {
  // Whether an environment of `repo` needs a sign-in, given whether its config asks for
  // `public: true`; invalid_config when it asks and the server does not allow it for that
  // repository (the message says what the server allows). Unset: never protected.
  std::function<Expected<bool>(const std::string& repo, bool wants_public)> protect;
  std::string auth_upstream; // "127.0.0.1:<api port>": the daemon that answers the checks
  // Host -> target of every preview, read by that daemon when its router asks for each
  // request (the local driver's router_mode "lookup"). Unset: no driver may look up.
  std::shared_ptr<core::PreviewRouteTable> routes;
  // The live preview sessions, which a router that can check a session cookie itself
  // follows (the local driver's Caddy outside lookup mode). Unset: every check is asked.
  std::shared_ptr<core::PreviewSessionTable> sessions;
  // Idle sleep (issue 12): the secret a router sends with its requests to the daemon's wake
  // handler (GET /internal/wake at auth_upstream). "": no wake handler; nothing may sleep.
  std::string wake_key;
  // Where a woken environment's app is posted the moment its health check passes (the wake
  // handler holds the request that woke it until then). Unset: the handler polls the store.
  std::shared_ptr<core::WakeBoard> wake_board;
};

// What a driver does for an environment whose profile is "untrusted" (an approved pull
// request from a fork; issue 15) besides what the engine caps: its network reaches only these
// hosts (through the egress proxy of the local runtime's network namespace), it runs as its
// own uid, at most pids_max processes, and its preview always needs a sign-in.
struct UntrustedProfile {
  std::vector<std::string> egress_allow = {"registry.npmjs.org", "registry.yarnpkg.com", "pypi.org",
                                           "files.pythonhosted.org"};
  // Networks (CIDRs) its pods (Kubernetes NetworkPolicy) or tasks (ECS security group) may
  // reach besides DNS: a policy selects addresses, not host names. Empty: none.
  std::vector<std::string> egress_cidrs;
  int pids_max = 64;
};

struct DriverContext {
  std::string home; // IDP_HOME
  // Owner identity → team (server config `teams:`), for cost allocation tags (idp:team).
  std::map<std::string, std::string> team_of;
  std::string domain = "preview.localhost";
  int router_port = 0; // the port environments' URLs use
  // Builds (local.build) running at once on this server; 0 = no limit (server config
  // limits.concurrent_builds). The others wait for a slot.
  int max_concurrent_builds = 0;
  std::string router_listen_host = "127.0.0.1";
  HttpsContext https;
  util::Clock* clock = nullptr;
  std::string self_exe;                              // path of the idp binary (for helper subcommands)
  nlohmann::json options = nlohmann::json::object(); // driver-specific settings from the server config
  JobRunHooks job_runs;
  SecretHooks secrets;
  PreviewAccess previews;
  UntrustedProfile untrusted;
};

class DriverFactory {
public:
  virtual ~DriverFactory() = default;
  virtual std::string_view name() const = 0;
  virtual std::string_view description() const = 0;
  virtual Expected<std::unique_ptr<Driver>> create(const DriverContext& ctx) const = 0;
  // Checks drivers.<name>.* as create() would, without creating anything (serve
  // --check-config). invalid_config naming the option.
  virtual Expected<void> check_options(const nlohmann::json& options) const { return {}; }
};

// The drivers compiled into this binary (drivers/builtin.cpp).
const std::vector<const DriverFactory*>& builtin_driver_factories();

} // namespace idp::drivers
