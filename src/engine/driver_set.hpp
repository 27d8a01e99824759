#pragma once
// The drivers the daemon created, by runtime name. Not owning. Immutable after setup.

#include <map>
#include <string>
#include <vector>

#include "drivers/driver.hpp"
#include "util/strings.hpp"

namespace idp::engine {

class DriverSet {
public:
  void add(drivers::Driver* d) { m_drivers[std::string(d->name())] = d; }

  // not_found (with the available names) for an unknown runtime.
  Expected<drivers::Driver*> get(const std::string& runtime) const {
    auto it = m_drivers.find(runtime);
    if (it == m_drivers.end()) {
      return make_error(ErrorCode::invalid_config, "runtime " + util::quote(runtime) +
                                                       " is not enabled (enabled: " + util::join(names(), ", ") + ")");
    }
    return it->second;
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [n, _] : m_drivers) {
      out.push_back(n);
    }
    return out;
  }

  std::vector<drivers::Driver*> all() const {
    std::vector<drivers::Driver*> out;
    for (const auto& [_, d] : m_drivers) {
      out.push_back(d);
    }
    return out;
  }

private:
  std::map<std::string, drivers::Driver*> m_drivers;
};

} // namespace idp::engine
