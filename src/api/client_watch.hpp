#pragma once
// Notices when the client of a long-lived stream has gone. cpp-httplib 0.11 tells a content
// provider that a client left only when a write fails, and a quiet stream (no new events, an
// app that prints nothing) writes nothing for minutes: its thread and stream slot would stay
// taken. ClientWatch finds the request's socket (httplib does not expose it: it is the one
// socket of this process with the request's local and remote address), turns on TCP
// keep-alive and a user timeout on it (a peer that vanished without a FIN is noticed in
// about a minute), and waits on it for the peer's FIN or an error between polls.
// One per stream, used by its thread only; it never reads, writes or closes the socket.

#include <string>

#include "util/time.hpp"

namespace httplib {
struct Request;
}

namespace idp::api {

class ClientWatch {
public:
  explicit ClientWatch(const httplib::Request& req);

  // Waits up to `ms`; false as soon as the client has closed its end or the connection
  // failed, true otherwise. Without the socket (not found) it just waits.
  bool wait(util::Millis ms) const;
  bool found() const { return m_fd >= 0; }

private:
  int m_fd = -1;
};

// The socket of this process connected from local_addr:local_port to remote_addr:remote_port
// (numeric addresses as httplib reports them), or -1.
int find_connected_socket(const std::string& local_addr, int local_port, const std::string& remote_addr,
                          int remote_port);

} // namespace idp::api
