#pragma once
// The API server's threads. cpp-httplib runs a whole connection (its keep-alive requests,
// and a streamed response's content provider) on the thread that took it from the queue, so
// a long-lived stream (SSE, logs?follow) pins that thread for as long as the client stays.
// ConnectionPool keeps `request_threads` threads for requests whatever the streams do: a
// handler about to stream calls claim_stream(), which hands the calling thread over to the
// stream and starts a replacement request thread; at most `max_streams` threads are handed
// over at once (beyond that the handler answers 503). A handed-over thread serves its
// connection to the end, then exits, releasing the slot. Thread-safe.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

namespace idp::api {

class ConnectionPool final : public httplib::TaskQueue {
public:
  // `name` names the threads in logs and the failpoint "thread.<name>".
  ConnectionPool(std::string name, size_t request_threads, size_t max_streams);
  ~ConnectionPool() override;
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // httplib: a new connection to serve. Queued until a request thread is free.
  void enqueue(std::function<void()> fn) override;
  // httplib, once the accept loop ends: serves what is queued, then joins every thread
  // (request and stream threads alike; streams end when their server stops).
  void shutdown() override;

  enum class Claim {
    claimed,    // this connection's thread now belongs to its stream; a replacement serves requests
    held,       // this connection already holds a stream slot (a second stream on a keep-alive connection)
    full,       // max_streams threads are streaming: answer 503
    not_pooled, // not called from a ConnectionPool thread (a programming error: refuse the stream)
  };
  // From a request handler, before it sets a streaming content provider.
  static Claim claim_stream();

  size_t max_streams() const { return m_max_streams; }
  // Threads handed over to streams right now.
  size_t streams() const;

private:
  void worker_main();
  Claim claim_for_current_thread();
  // Joins the threads that have exited; they are taken out under the lock and joined outside.
  void reap_exited();

  const std::string m_name;
  const size_t m_request_threads;
  const size_t m_max_streams;
  mutable std::mutex m_mu;
  std::condition_variable m_cv;
  std::deque<std::function<void()>> m_jobs; // guarded by m_mu
  std::vector<std::thread> m_threads;       // guarded by m_mu: started and not yet joined
  std::vector<std::thread::id> m_exited;    // guarded by m_mu: stream threads that have returned
  size_t m_streams = 0;                     // guarded by m_mu
  bool m_shutdown = false;                  // guarded by m_mu
};

} // namespace idp::api
