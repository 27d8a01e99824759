#pragma once
// TCP ports for the processes the daemon starts.

#include <utility>

#include "util/expected.hpp"

namespace idp::util {

// A free TCP port on 127.0.0.1 (bind to 0, read, close).
Expected<int> find_free_port();

// The kernel's ephemeral range (net.ipv4.ip_local_port_range; 32768-60999 when unreadable).
std::pair<int, int> ephemeral_port_range();

// A free TCP port for a process the daemon starts to listen on later (an app, Caddy and
// its admin API, PostgreSQL), outside the ephemeral range: between
// find_free_port's close and the app's listen, any bind to port 0 or outgoing connection
// on the machine could be given an ephemeral port (a CI run saw another daemon's API take
// an app's port, whose health check then answered 401). Random in 10000..(start of the
// ephemeral range - 1), else above its end; checked free by a bind to 0.0.0.0:port.
// find_free_port when no such range exists.
Expected<int> find_free_app_port();

// True when something accepts TCP connections on 127.0.0.1:port now (a connect, closed at
// once). A refused connect costs microseconds: cheap to ask every millisecond while an app
// starts, where an HTTP request each time would not be.
bool accepts_connections(int port);

} // namespace idp::util
