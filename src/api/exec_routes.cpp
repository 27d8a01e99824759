#include "api/exec_routes.hpp"

#include <algorithm>
#include <csignal>
#include <httplib.h>
#include <map>
#include <memory>
#include <mutex>
#include <spdlog/spdlog.h>

#include "api/api_error.hpp"
#include "core/api_types.hpp"
#include "core/ttl.hpp"
#include "drivers/driver.hpp"
#include "util/base64.hpp"
#include "util/hash.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/periodic_thread.hpp"
#include "util/redact.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::api {

using nlohmann::json;

namespace {

constexpr util::Millis k_default_timeout_ms = 60'000;
constexpr util::Millis k_max_timeout_ms = 24LL * 3600 * 1000;
// A session nobody streams is stopped after this: a client that died between creating it
// and attaching must not leave its command running until the deadline.
constexpr util::Millis k_attach_timeout_ms = 30'000;
// At the deadline: TERM, then KILL after this.
constexpr util::Millis k_term_grace_ms = 2'000;
// A stream writes a ping after this much quiet: a client that went away is only noticed
// by a write that fails, and its command must not run on unseen.
constexpr util::Millis k_ping_ms = 1'000;
// After the command exits, output still in flight is read for at most this long (a
// process that left the group may hold the pipe open forever).
constexpr util::Millis k_drain_ms = 2'000;
// How long a stdin chunk may wait for the command to read it.
constexpr util::Millis k_stdin_wait_ms = 10'000;

void send_exec_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(util::json_dump(body) + "\n", "application/json");
}

json parse_exec_body(const httplib::Request& req) {
  auto j = core::parse_json_object(req.body);
  if (!j) {
    throw ApiError(400, "invalid_json", j.error().message);
  }
  return *j;
}

std::vector<std::string> parse_argv(const json& body) {
  const char* want = "field \"argv\": expected a non-empty array of strings (the command and its arguments)";
  if (!body.contains("argv") || !body["argv"].is_array() || body["argv"].empty()) {
    throw ApiError(400, "invalid_argument", want);
  }
  std::vector<std::string> argv;
  for (const auto& a : body["argv"]) {
    if (!a.is_string()) {
      throw ApiError(400, "invalid_argument", want);
    }
    argv.push_back(a.get<std::string>());
  }
  return argv;
}

unsigned short parse_size_field(const json& body, const char* key, unsigned short def) {
  if (!body.contains(key) || body[key].is_null()) {
    return def;
  }
  if (!body[key].is_number_integer() || body[key].get<int64_t>() < 1 || body[key].get<int64_t>() > 10000) {
    throw ApiError(400, "invalid_argument", std::string("field \"") + key + "\": expected an integer from 1 to 10000");
  }
  return static_cast<unsigned short>(body[key].get<int64_t>());
}

// One exec session: its command and the state the routes and the reaper share.
struct ExecSession {
  std::string id;
  std::string env;
  std::unique_ptr<drivers::ExecProcess> proc;
  bool tty = false;
  util::Millis timeout_ms = 0;
  int64_t created_at = 0;                                // steady clock
  int64_t deadline = 0;                                  // steady clock
  std::atomic<bool> attached{false};                     // a stream has been attached (once only)
  std::atomic<bool> timed_out{false};                    // TERM sent at the deadline
  std::atomic<int64_t> kill_at{0};                       // then KILL at this time
  util::Redactor redactor;                               // the environment's secret values
  std::map<std::string, util::StreamRedactor> redacting; // per output stream; the pump's thread only
  ~ExecSession() {
    if (proc) {
      spdlog::info("exec: session {} in {} ended", id, env);
    }
  }
};

// The running sessions, at most max of them, and the reaper enforcing their deadlines.
class ExecSessions {
public:
  explicit ExecSessions(size_t max) : m_max(max) {
    m_reaper.start([this] { return reap(); }, "exec_reaper");
  }
  ~ExecSessions() {
    m_reaper.stop();
    std::map<std::string, std::shared_ptr<ExecSession>> left;
    {
      std::lock_guard lock(m_mutex);
      left.swap(m_sessions);
    }
    // Destroyed outside the lock: each stops its command's process group and reaps it.
  }

  // Reserves a slot before the command starts; 503 when every slot is taken.
  void reserve() {
    std::lock_guard lock(m_mutex);
    if (m_sessions.size() + m_pending >= m_max) {
      throw ApiError(503, "unavailable",
                     "too many exec sessions are running on this server (" + std::to_string(m_max) +
                         "); try again when one has ended");
    }
    ++m_pending;
  }
  void unreserve() {
    std::lock_guard lock(m_mutex);
    --m_pending;
  }
  // Turns a reserved slot into a session.
  void add(std::shared_ptr<ExecSession> s) {
    std::lock_guard lock(m_mutex);
    --m_pending;
    m_sessions[s->id] = std::move(s);
  }
  // 404 unless session `id` runs in environment `env`.
  std::shared_ptr<ExecSession> find(const std::string& env, const std::string& id) {
    std::lock_guard lock(m_mutex);
    auto it = m_sessions.find(id);
    if (it == m_sessions.end() || it->second->env != env) {
      throw ApiError(404, "not_found",
                     "no exec session " + util::quote(id) + " in environment " + util::quote(env) +
                         " (it has ended, or never existed)");
    }
    return it->second;
  }
  // Forgets the session; its command stops when the last holder lets go.
  void remove(const std::string& id) {
    std::shared_ptr<ExecSession> gone;
    std::lock_guard lock(m_mutex);
    auto it = m_sessions.find(id);
    if (it != m_sessions.end()) {
      gone = std::move(it->second);
      m_sessions.erase(it);
    }
  }

private:
  // Deadlines (TERM, then KILL) and sessions nobody attached to in time.
  util::Millis reap() {
    std::vector<std::shared_ptr<ExecSession>> all;
    {
      std::lock_guard lock(m_mutex);
      for (const auto& [id, s] : m_sessions) {
        all.push_back(s);
      }
    }
    int64_t now = util::steady_ms();
    for (const auto& s : all) {
      if (!s->timed_out && now >= s->deadline) {
        spdlog::info("exec: session {} in {} reached its timeout of {}: stopping it", s->id, s->env,
                     core::format_ttl(s->timeout_ms));
        s->kill_at = now + k_term_grace_ms;
        s->timed_out = true;
        s->proc->signal(SIGTERM);
      } else if (s->timed_out && now >= s->kill_at) {
        s->proc->signal(SIGKILL);
      }
      if (!s->attached && now - s->created_at >= k_attach_timeout_ms) {
        spdlog::warn("exec: session {} in {}: no client attached within {}s; stopping it", s->id, s->env,
                     k_attach_timeout_ms / 1000);
        remove(s->id);
      }
    }
    return 100;
  }

  size_t m_max;
  std::mutex m_mutex;
  std::map<std::string, std::shared_ptr<ExecSession>> m_sessions; // guarded by m_mutex
  size_t m_pending = 0;                                           // guarded by m_mutex
  util::PeriodicThread m_reaper;                                  // last: stopped first
};

std::string frame(const json& j) { return util::json_dump(j) + "\n"; }

// The stream of one session: output frames as they come, pings while quiet, then the exit
// frame. False when the client went away (the caller then stops the command).
bool pump(ExecSession& s, httplib::DataSink& sink, const std::atomic<bool>* stopping) {
  int64_t last_write = util::steady_ms();
  int64_t drain_until = 0;
  auto write = [&](const json& j) {
    std::string f = frame(j);
    last_write = util::steady_ms();
    return sink.write(f.data(), f.size());
  };
  // Output passes through the session's redactor; what it holds back (the start of a
  // secret value, maybe) goes out when the command is quiet or ends.
  auto send = [&](const std::string& stream, const std::string& data) {
    return data.empty() || write({{"stream", stream}, {"data", util::base64_encode(data)}});
  };
  auto flush_redacted = [&]() {
    for (auto& [stream, r] : s.redacting) {
      if (!send(stream, r.flush())) {
        return false;
      }
    }
    return true;
  };
  while (!(stopping && stopping->load())) {
    auto chunks = s.proc->read(200);
    for (auto& [stream, data] : chunks) {
      if (s.redactor.empty()) {
        if (!send(stream, data)) {
          return false;
        }
        continue;
      }
      auto it = s.redacting.try_emplace(stream, s.redactor).first;
      if (!send(stream, it->second.feed(data))) {
        return false;
      }
    }
    if (chunks.empty() && !flush_redacted()) {
      return false;
    }
    auto status = s.proc->poll_exit();
    if (status && drain_until == 0) {
      drain_until = util::steady_ms() + k_drain_ms;
    }
    if (status && (s.proc->output_done() || util::steady_ms() >= drain_until)) {
      if (!flush_redacted()) {
        return false;
      }
      json exit = {{"event", "exit"},
                   {"exit_code", status->first},
                   {"signal", status->second},
                   {"timed_out", s.timed_out.load()}};
      if (s.timed_out) {
        exit["timeout"] = core::format_ttl(s.timeout_ms);
      }
      if (!write(exit)) {
        return false;
      }
      sink.done();
      return true;
    }
    if (util::steady_ms() - last_write >= k_ping_ms && !write({{"event", "ping"}})) {
      return false;
    }
  }
  // The server stops: so does the command (the session's end stops it), and the client hears why.
  std::string f = frame({{"error", "unavailable"}, {"message", "the server is stopping; the command was stopped"}});
  sink.write(f.data(), f.size());
  sink.done();
  return true;
}

} // namespace

void register_exec_routes(httplib::Server& s, ApiContext& ctx, ExecRouteHooks hooks) {
  // Each attached stream holds one of the API's workers: at most half of them, so the rest
  // of the API keeps answering whatever the exec sessions do.
  auto sessions = std::make_shared<ExecSessions>(std::min(hooks.max_sessions, std::max<size_t>(1, ctx.threads / 2)));
  auto h = std::make_shared<ExecRouteHooks>(std::move(hooks));

  // The environment `name`, once the caller may exec in it and it is not destroyed.
  auto exec_env = [&ctx, h](const std::string& name) {
    auto env = unwrap(ctx.store->get_environment(name));
    h->authorize(env, "exec in");
    if (env.phase == core::Phase::destroyed) {
      throw ApiError(409, "conflict", "environment " + util::quote(name) + " is destroyed");
    }
    return env;
  };

  // One-shot: runs to the end (at most 60 s) and answers with everything at once.
  s.Post(R"(/api/v1/environments/([^/]+)/exec)",
         [&ctx, exec_env, h](const httplib::Request& req, httplib::Response& res) {
           json body = parse_exec_body(req);
           std::vector<std::string> argv = parse_argv(body);
           auto env = exec_env(req.matches[1].str());
           auto driver = unwrap(ctx.drivers->get(env.runtime));
           json out = unwrap(driver->exec(env, argv));
           if (h->secret_values) {
             util::Redactor redactor(h->secret_values(env));
             for (const char* stream : {"stdout", "stderr"}) {
               if (out.contains(stream) && out[stream].is_string()) {
                 out[stream] = redactor.redact(out[stream].get<std::string>());
               }
             }
           }
           send_exec_json(res, 200, out);
         });

  s.Post(R"(/api/v1/environments/([^/]+)/exec/sessions)",
         [&ctx, exec_env, sessions, h](const httplib::Request& req, httplib::Response& res) {
           json body = parse_exec_body(req);
           drivers::ExecRequest er;
           er.argv = parse_argv(body);
           if (body.contains("tty") && !body["tty"].is_null()) {
             if (!body["tty"].is_boolean()) {
               throw ApiError(400, "invalid_argument", "field \"tty\": expected true or false");
             }
             er.tty = body["tty"].get<bool>();
           }
           er.rows = parse_size_field(body, "rows", 24);
           er.cols = parse_size_field(body, "cols", 80);
           util::Millis timeout = k_default_timeout_ms;
           if (body.contains("timeout") && !body["timeout"].is_null()) {
             std::string t = body["timeout"].is_string() ? body["timeout"].get<std::string>() : body["timeout"].dump();
             auto d = core::parse_duration(t);
             if (!d || *d <= 0 || *d > k_max_timeout_ms) {
               throw ApiError(400, "invalid_argument",
                              "field \"timeout\": expected a duration from 1s to 24h like 30s, 10m or 2h, got " +
                                  util::quote(t));
             }
             timeout = *d;
           }
           auto env = exec_env(req.matches[1].str());
           auto driver = unwrap(ctx.drivers->get(env.runtime));
           sessions->reserve();
           auto proc = driver->start_exec(env, er);
           if (!proc) {
             sessions->unreserve();
             throw ApiError::from(proc.error());
           }
           auto session = std::make_shared<ExecSession>();
           session->id = util::random_hex(16);
           session->env = env.name;
           session->proc = std::move(*proc);
           session->tty = er.tty;
           session->timeout_ms = timeout;
           session->created_at = util::steady_ms();
           session->deadline = session->created_at + timeout;
           if (h->secret_values) {
             session->redactor = util::Redactor(h->secret_values(env));
           }
           std::string base = "/api/v1/environments/" + util::url_encode(env.name) + "/exec/sessions/" + session->id;
           json out = {{"id", session->id},
                       {"environment", env.name},
                       {"argv", er.argv},
                       {"tty", er.tty},
                       {"timeout", core::format_ttl(timeout)},
                       {"stream", base + "/stream"},
                       {"stdin", base + "/stdin"},
                       {"resize", base + "/resize"}};
           spdlog::info("exec: {} started session {} in {}: {} (tty: {}, timeout: {})", h->actor(req), session->id,
                        env.name, util::quote(er.argv[0]), er.tty, core::format_ttl(timeout));
           sessions->add(std::move(session));
           send_exec_json(res, 201, out);
         });

  s.Get(R"(/api/v1/environments/([^/]+)/exec/sessions/([0-9a-f]+)/stream)",
        [exec_env, sessions, h](const httplib::Request& req, httplib::Response& res) {
          auto env = exec_env(req.matches[1].str());
          auto session = sessions->find(env.name, req.matches[2].str());
          if (h->claim_stream && !h->claim_stream(res)) {
            return; // 503: every stream slot is taken; the session waits for a client
          }
          if (session->attached.exchange(true)) {
            throw ApiError(409, "conflict",
                           "exec session " + util::quote(session->id) + " already has a client reading its output");
          }
          const std::atomic<bool>* stopping = h->stopping;
          res.set_header("Cache-Control", "no-cache");
          res.set_chunked_content_provider(
              "application/x-ndjson",
              [session, stopping](size_t, httplib::DataSink& sink) { return pump(*session, sink, stopping); },
              // Runs however the response ends, also when the provider never ran: the
              // session ends with its stream, and its command with it.
              [sessions, session](bool) { sessions->remove(session->id); });
        });

  s.Post(R"(/api/v1/environments/([^/]+)/exec/sessions/([0-9a-f]+)/stdin)",
         [exec_env, sessions](const httplib::Request& req, httplib::Response& res) {
           json body = parse_exec_body(req);
           std::string data;
           if (body.contains("data") && !body["data"].is_null()) {
             auto d = body["data"].is_string() ? util::base64_decode(body["data"].get<std::string>()) : std::nullopt;
             if (!d) {
               throw ApiError(400, "invalid_argument", "field \"data\": expected the input's bytes in base64");
             }
             data = std::move(*d);
           }
           bool eof = false;
           if (body.contains("eof") && !body["eof"].is_null()) {
             if (!body["eof"].is_boolean()) {
               throw ApiError(400, "invalid_argument", "field \"eof\": expected true or false");
             }
             eof = body["eof"].get<bool>();
           }
           auto env = exec_env(req.matches[1].str());
           auto session = sessions->find(env.name, req.matches[2].str());
           if (!data.empty()) {
             auto w = session->proc->write_input(data, k_stdin_wait_ms);
             if (!w) {
               throw ApiError(409, "conflict", "exec session " + util::quote(session->id) + ": " + w.error().message);
             }
           }
           if (eof) {
             session->proc->close_input();
           }
           send_exec_json(res, 200, {{"written", data.size()}, {"eof", eof}});
         });

  s.Post(R"(/api/v1/environments/([^/]+)/exec/sessions/([0-9a-f]+)/resize)",
         [exec_env, sessions](const httplib::Request& req, httplib::Response& res) {
           json body = parse_exec_body(req);
           if (!body.contains("rows") || !body.contains("cols")) {
             throw ApiError(400, "invalid_argument", "fields \"rows\" and \"cols\": expected integers from 1 to 10000");
           }
           unsigned short rows = parse_size_field(body, "rows", 24);
           unsigned short cols = parse_size_field(body, "cols", 80);
           auto env = exec_env(req.matches[1].str());
           auto session = sessions->find(env.name, req.matches[2].str());
           unwrap(session->proc->resize(rows, cols));
           send_exec_json(res, 200, {{"rows", rows}, {"cols", cols}});
         });

  s.Delete(R"(/api/v1/environments/([^/]+)/exec/sessions/([0-9a-f]+))",
           [exec_env, sessions](const httplib::Request& req, httplib::Response& res) {
             auto env = exec_env(req.matches[1].str());
             auto session = sessions->find(env.name, req.matches[2].str());
             // Stopped now, not when the last holder lets go: an attached stream then
             // reports the exit (killed by signal 9) and ends.
             session->proc->signal(SIGKILL);
             sessions->remove(session->id);
             send_exec_json(res, 200, {{"id", session->id}, {"status", "stopped"}});
           });
}

} // namespace idp::api
