#include "bench_support.hpp"

#include <algorithm>
#include <unistd.h>

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
  c.env = {{"PORT", std::to_string(port)}};
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

} // namespace idp::bench
