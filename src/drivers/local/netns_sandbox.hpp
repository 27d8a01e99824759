#pragma once
// The network sandbox of the untrusted profile (approved pull requests from forks): runs a
// command in a network namespace of its own, with no way out but three relays kept by a
// wrapper that stays root in the host namespace.
//
//   idp __netns [--uid U --gid G] [--publish PORT]... [--forward PORT]...
//               [--allow HOST[:PORT]]... [--proxy-port P] -- COMMAND ARGS...
//
// The wrapper forks a child that unshares its network namespace (CLONE_NEWNET: needs
// CAP_SYS_ADMIN), brings its loopback up, waits for the wrapper's go, drops to --uid/--gid
// (util::drop_privileges: no capabilities, no_new_privs) and execs COMMAND. The namespace
// has `lo` and nothing else: no route, so every direct connection out fails (ENETUNREACH,
// or ECONNREFUSED on its own 127.0.0.1), and no DNS: the resolver's server is unreachable.
// DNS is left out on purpose, as it is a classic exfiltration channel (data encoded in the
// names looked up, answered by the attacker's name server); the proxy resolves the allowed
// names on the host side instead. The wrapper creates the namespace's sockets from a
// thread that setns()'d into it (a socket keeps the namespace it was made in) and relays:
//   --publish PORT  host 127.0.0.1:PORT -> namespace 127.0.0.1:PORT (the app's listener), so
//                   health checks and the router reach the app on its usual port. A
//                   connection that arrives before the app listens is closed.
//   --forward PORT  namespace 127.0.0.1:PORT -> host 127.0.0.1:PORT (the environment's
//                   PostgreSQL), one host port each, nothing else of the host.
//   egress proxy    namespace 127.0.0.1:P (--proxy-port, default 3128): an HTTP proxy for
//                   `CONNECT host:port` and absolute-form `GET http://host[:port]/…` (one
//                   request per connection, sent with `Connection: close` and the Host of
//                   the target). Only hosts of the allowlist (egress_allowed) are resolved
//                   and connected to, from the host; others get 403 naming the host and the
//                   server config key forks.egress_allow, failed connections 502.
// The child's environment gets HTTP_PROXY, HTTPS_PROXY, http_proxy, https_proxy,
// npm_config_proxy and npm_config_https_proxy = http://127.0.0.1:P, and NO_PROXY/no_proxy
// = localhost,127.0.0.1 (the forwarded ports are reached directly).
//
// What stays reachable: the relays above; an allowed name that resolves to a loopback,
// unspecified or link-local address (169.254.169.254, the cloud metadata service) is
// refused unless the rule names that IP literally. Not covered here: filesystem unix
// sockets (netns isolates abstract ones only; those are the filesystem layer's job); a
// CONNECT tunnel is opaque, so an allowed host behind a shared CDN can front another of its
// sites (SNI/Host), which is why the allowlist names registries only; without --uid the app
// keeps the caller's privileges and a root app can leave the namespace (setns).
//
// Processes: the child stays in the caller's process group and session (the shim signals
// the group). SIGTERM, SIGINT and SIGHUP received by the wrapper are forwarded to the child
// (a signal sent to the whole group thus reaches the app twice); when the child exits the
// wrapper exits at once with its status. The child has PR_SET_PDEATHSIG=SIGKILL, so a
// killed wrapper takes the app with it; the wrapper never outlives the child.
// Connections relayed at once are limited (k_max_connections), so a hostile app cannot
// exhaust the wrapper's threads.

#include <string>
#include <string_view>
#include <vector>

#include "util/expected.hpp"

namespace idp::drivers::local {

struct NetnsArgs {
  int uid = -1; // the command's user and group (-1 = the wrapper's own)
  int gid = -1;
  std::vector<int> publish;       // app ports reachable from the host's 127.0.0.1
  std::vector<int> forward;       // host ports reachable from the namespace's 127.0.0.1
  std::vector<std::string> allow; // egress allowlist entries, HOST[:PORT] or *.SUFFIX[:PORT]
  int proxy_port = 3128;
  std::vector<std::string> argv; // the command
};

// One entry of the egress allowlist: an exact host (lowercase; an IP literal matches only
// itself) or, with `wildcard`, every subdomain of `host` (not `host` itself, never an IP).
// port 0 = 443 and 80.
struct EgressRule {
  std::string host;
  bool wildcard = false;
  int port = 0;
};

// Parses "HOST", "HOST:PORT", "*.SUFFIX[:PORT]", "[V6]:PORT" or a bare IPv6 address.
// invalid_argument for an empty or malformed host, "*" alone or a port outside 1-65535.
Expected<EgressRule> parse_egress_rule(std::string_view text);

// Whether a connection to host:port is allowed (host as the client named it; case and one
// trailing dot do not matter). A wildcard never matches an IP literal or a numeric host.
bool egress_allowed(const std::vector<EgressRule>& rules, std::string_view host, int port);

// A request the egress proxy received (the head, up to and including the blank line).
struct ProxyRequest {
  bool connect = false; // CONNECT host:port (a tunnel) rather than an absolute-form request
  std::string host;     // without brackets for IPv6
  int port = 0;
  // For an absolute-form request: the head to send to the origin (origin-form target, the
  // target's Host, Proxy-* and Connection headers dropped, `Connection: close` added).
  std::string origin_head;
};

// invalid_argument for anything else: another scheme (https:// is sent with CONNECT), a
// missing port in CONNECT, userinfo, characters a host name cannot have, HTTP other than
// 1.0 and 1.1.
Expected<ProxyRequest> parse_proxy_request(std::string_view head);

// The arguments after the program name: "__netns --uid … -- argv…".
std::vector<std::string> netns_command_arguments(const NetnsArgs& args);

// Entry point of `idp __netns`; argv[0] is the program, an optional "__netns" may follow.
// Exits the process with the command's status (128+signal when killed) once the command
// ran; returns 2 for bad arguments, 126 when the sandbox cannot be set up (no
// CAP_SYS_ADMIN: the command is never run unsandboxed), 127 when the command cannot be
// started. Must be called while the process has a single thread.
int run_netns(int argc, char** argv);

} // namespace idp::drivers::local
