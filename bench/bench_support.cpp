#include "bench_support.hpp"

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "drivers/local/local_driver_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

namespace idp::bench {

double percentile(std::vector<double> v, double p) {
  if (v.empty()) {
    return 0;
  }
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

bool healthy(const std::string& url) {
  util::HttpRequest r;
  r.url = url;
  r.timeout_ms = 1000;
  r.connect_timeout_ms = 200;
  auto resp = util::http_request(r);
  return resp && resp->status == 200;
}

double app_start_ms(const std::string& app_dir) {
  int port = util::find_free_port().value_or(0);
  util::Command c;
  c.argv = {"node", "server.js"};
  c.cwd = app_dir;
  // The environment the local runtime gives an app (its passthrough variables, then $PORT),
  // not the bench's own: e.g. an inherited NODE_EXTRA_CA_CERTS makes node load a CA bundle
  // and start some 40 ms slower, which no preview pays.
  c.clear_env = true;
  for (const auto& k : drivers::local::passthrough_variables()) {
    if (const char* v = std::getenv(k.c_str())) {
      c.env[k] = v;
    }
  }
  c.env["PORT"] = std::to_string(port);
  int64_t t0 = util::steady_ms();
  auto pid = util::spawn(c, util::SpawnOptions{});
  if (!pid) {
    return -1;
  }
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/health";
  while (!healthy(url)) {
    usleep(2000);
  }
  double ms = static_cast<double>(util::steady_ms() - t0);
  util::terminate_group(*pid, 2000);
  return ms;
}

long raw_http_status(const std::string& host_port, const std::string& request) {
  size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) {
    return 0;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(host_port.c_str() + colon + 1)));
  if (::inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    return 0;
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return 0;
  }
  long status = 0;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    size_t sent = 0;
    while (sent < request.size()) {
      ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) {
        break;
      }
      sent += static_cast<size_t>(n);
    }
    std::string answer;
    char buf[16384];
    while (sent == request.size()) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        break;
      }
      answer.append(buf, static_cast<size_t>(n));
    }
    // "HTTP/1.1 202 Accepted"
    if (answer.size() > 12 && answer.compare(0, 5, "HTTP/") == 0) {
      size_t sp = answer.find(' ');
      if (sp != std::string::npos) {
        status = std::atol(answer.c_str() + sp + 1);
      }
    }
  }
  ::close(fd);
  return status;
}

std::string raw_http_request(const std::string& method, const std::string& host_port, const std::string& target,
                             const std::vector<std::pair<std::string, std::string>>& headers, const std::string& body) {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: " + host_port + "\r\nConnection: close\r\n";
  for (const auto& [k, v] : headers) {
    r += k + ": " + v + "\r\n";
  }
  if (!body.empty() || method == "POST") {
    r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  r += "\r\n";
  r += body;
  return r;
}

long rss_kib(int pid) {
  auto s = util::read_file("/proc/" + std::to_string(pid) + "/status");
  auto p = s ? s->find("VmRSS:") : std::string::npos;
  return p == std::string::npos ? -1 : std::atol(s->c_str() + p + 6);
}

double cpu_seconds(int pid) {
  auto s = util::read_file("/proc/" + std::to_string(pid) + "/stat");
  // Fields after the command (which may hold spaces) in parentheses: utime is the 12th, stime the 13th.
  size_t close = s ? s->rfind(')') : std::string::npos;
  if (close == std::string::npos) {
    return -1;
  }
  std::istringstream in(s->substr(close + 1));
  std::string field;
  long long utime = 0, stime = 0;
  for (int i = 1; i <= 13 && in >> field; ++i) {
    if (i == 12) {
      utime = std::atoll(field.c_str());
    } else if (i == 13) {
      stime = std::atoll(field.c_str());
    }
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

} // namespace idp::bench
