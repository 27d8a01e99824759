#pragma once
// Helpers the benchmarks share: percentiles, a health probe, and the floor every
// deployment is compared with (the example app started by hand).

#include <string>
#include <vector>

namespace idp::bench {

// The p-th percentile (0..1) of `v`, nearest rank.
double percentile(std::vector<double> v, double p);
// True when GET `url` answers 200 within a second.
bool healthy(const std::string& url);
// Starts `node server.js` in `app_dir` on a free port and returns the milliseconds until
// its /health answers 200; the process is stopped afterwards.
double app_start_ms(const std::string& app_dir);

} // namespace idp::bench
