#include "engine/options.hpp"

#include <algorithm>

namespace idp::engine {

util::Millis backoff_delay(const EngineOptions& o, int attempt) {
  util::Millis d = o.backoff_base;
  for (int i = 1; i < attempt && d < o.backoff_max; ++i) {
    d *= 2;
  }
  return std::min(d, o.backoff_max);
}

} // namespace idp::engine
