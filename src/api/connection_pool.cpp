#include "api/connection_pool.hpp"

#include <algorithm>

#include "util/periodic_thread.hpp"

namespace idp::api {

namespace {

// The pool whose thread this is, and whether the connection it serves holds a stream slot.
// Set by worker_main; claim_stream() is called from handlers on the same thread.
struct ThreadRole {
  ConnectionPool* pool = nullptr;
  bool streaming = false;
};
thread_local ThreadRole t_role;

} // namespace

ConnectionPool::ConnectionPool(std::string name, size_t request_threads, size_t max_streams)
    : m_name(std::move(name)), m_request_threads(std::max<size_t>(1, request_threads)), m_max_streams(max_streams) {
  std::lock_guard<std::mutex> g(m_mu);
  for (size_t i = 0; i < m_request_threads; ++i) {
    m_threads.emplace_back([this] { worker_main(); });
  }
}

ConnectionPool::~ConnectionPool() { shutdown(); }

void ConnectionPool::enqueue(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> g(m_mu);
    m_jobs.push_back(std::move(fn));
  }
  m_cv.notify_one();
}

void ConnectionPool::shutdown() {
  {
    std::lock_guard<std::mutex> g(m_mu);
    m_shutdown = true;
  }
  m_cv.notify_all();
  // claim_stream() starts no thread once m_shutdown is set, so this empties the list.
  while (true) {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> g(m_mu);
      threads.swap(m_threads);
      m_exited.clear();
    }
    if (threads.empty()) {
      return;
    }
    for (auto& t : threads) {
      if (t.joinable()) {
        t.join();
      }
    }
  }
}

size_t ConnectionPool::streams() const {
  std::lock_guard<std::mutex> g(m_mu);
  return m_streams;
}

ConnectionPool::Claim ConnectionPool::claim_stream() {
  if (!t_role.pool) {
    return Claim::not_pooled;
  }
  return t_role.pool->claim_for_current_thread();
}

ConnectionPool::Claim ConnectionPool::claim_for_current_thread() {
  reap_exited();
  std::lock_guard<std::mutex> g(m_mu);
  if (t_role.streaming) {
    return Claim::held;
  }
  if (m_shutdown || m_streams >= m_max_streams) {
    return Claim::full;
  }
  ++m_streams;
  t_role.streaming = true;
  // The replacement: requests keep m_request_threads threads while this one streams.
  m_threads.emplace_back([this] { worker_main(); });
  return Claim::claimed;
}

void ConnectionPool::reap_exited() {
  std::vector<std::thread> done;
  {
    std::lock_guard<std::mutex> g(m_mu);
    for (const auto& id : m_exited) {
      auto it =
          std::find_if(m_threads.begin(), m_threads.end(), [&](const std::thread& t) { return t.get_id() == id; });
      if (it != m_threads.end()) {
        done.push_back(std::move(*it));
        m_threads.erase(it);
      }
    }
    m_exited.clear();
  }
  // Each has returned from worker_main or is about to: the joins are short.
  for (auto& t : done) {
    t.join();
  }
}

void ConnectionPool::worker_main() {
  t_role.pool = this;
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lk(m_mu);
      m_cv.wait(lk, [this] { return m_shutdown || !m_jobs.empty(); });
      if (m_jobs.empty()) {
        return; // shutting down, nothing left to serve
      }
      job = std::move(m_jobs.front());
      m_jobs.pop_front();
    }
    t_role.streaming = false;
    // A throw out of a connection is logged; the thread goes on serving (the connection's
    // socket is closed by httplib's own guards).
    util::guarded_step(m_name, job);
    if (t_role.streaming) {
      // Handed over to a stream, and a replacement took this thread's place: leave.
      std::lock_guard<std::mutex> g(m_mu);
      --m_streams;
      m_exited.push_back(std::this_thread::get_id());
      return;
    }
  }
}

} // namespace idp::api
