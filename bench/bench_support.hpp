#pragma once
// Helpers the benchmarks share: percentiles, a health probe, and the floor every
// deployment is compared with (the example app started by hand).

#include <string>
#include <utility>
#include <vector>

namespace idp::bench {

// The p-th percentile (0..1) of `v`, nearest rank.
double percentile(std::vector<double> v, double p);
// True when GET `url` answers 200 within a second.
bool healthy(const std::string& url);
// A load generator's HTTP/1.1 client: one connection per request (as GitHub delivers
// webhooks), `request` (a whole request, built once by the caller) written as it is, the
// answer read to the server's close. Returns the status code, or 0 when the connection or
// the answer failed. libcurl's per-request setup cost the bench's clients about as much CPU
// as the daemon spent on a request, on the same two cores.
long raw_http_status(const std::string& host_port, const std::string& request);
// "GET `target` HTTP/1.1" to `host_port` with `headers` and `body`, ready for raw_http_status.
std::string raw_http_request(const std::string& method, const std::string& host_port, const std::string& target,
                             const std::vector<std::pair<std::string, std::string>>& headers,
                             const std::string& body = "");
// Starts `node server.js` in `app_dir` on a free port, with the environment the local runtime
// gives an app, and returns the milliseconds until its /health answers 200; the process is
// stopped afterwards.
double app_start_ms(const std::string& app_dir);
// The resident memory of process `pid` in KiB (VmRSS), -1 when it cannot be read.
long rss_kib(int pid);

// User and system CPU time a process has used so far, in seconds (/proc/<pid>/stat); -1 if gone.
double cpu_seconds(int pid);

} // namespace idp::bench
