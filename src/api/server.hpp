#pragma once
// The daemon's HTTP API: REST JSON under /api/v1, /healthz, and hooks registered by
// sources (e.g. /hooks/github). Handlers are thin: parse the request, call the controller
// or the store, render JSON. Thread-safe; runs on its own thread pool.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "engine/controller.hpp"
#include "engine/driver_set.hpp"
#include "engine/templates.hpp"
#include "store/state_store.hpp"
#include "util/time.hpp"

namespace httplib {
class Server;
struct Request;
struct Response;
} // namespace httplib

namespace idp::api {

struct ApiContext {
  store::StateStore* store = nullptr;
  engine::Controller* controller = nullptr;
  const engine::DriverSet* drivers = nullptr;
  const engine::TemplateCatalog* templates = nullptr;
  util::Clock* clock = nullptr;
  std::string version;
  size_t max_body_bytes = 1024 * 1024;
  size_t threads = 32;
  util::Millis log_poll_ms = 200; // follow streams poll the driver this often
  util::Millis reaper_interval_ms = 30'000; // reported in /api/v1/capabilities
  util::Millis ttl_min_ms = 10 * 60'000;
  util::Millis ttl_max_ms = 30LL * 86'400'000;
};

// A raw route for hooks: gets the exact body bytes and headers.
struct RawRequest {
  std::string method;
  std::string path;
  std::string body;
  std::function<std::string(const std::string& header)> header; // "" when absent
  std::string remote_addr;
};
struct RawResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};
using RawHandler = std::function<RawResponse(const RawRequest&)>;

class ApiServer {
public:
  explicit ApiServer(ApiContext ctx);
  ~ApiServer();

  // Adds a POST route with a raw handler (before start()).
  void add_post_hook(const std::string& path, RawHandler handler);
  // Binds host:port (port 0 = any free port); returns the bound port.
  Expected<int> bind(const std::string& host, int port);
  // Serves on a background thread until stop().
  void start();
  void stop();

private:
  void routes();
  ApiContext m_ctx;
  std::unique_ptr<httplib::Server> m_server;
  std::thread m_thread;
  std::atomic<bool> m_stopping{false};
  util::Millis m_started_at = 0;
  int m_listen_fd = -1; // the listening socket (owned by httplib), to raise its backlog
};

} // namespace idp::api
