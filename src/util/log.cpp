#include "util/log.hpp"

#include <cstdlib>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace idp::util {

void init_logging(const std::string& file) {
  std::shared_ptr<spdlog::logger> logger;
  if (file.empty()) {
    logger = spdlog::stderr_color_mt("idp");
  } else {
    logger = spdlog::basic_logger_mt("idp", file);
  }
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  const char* lvl = std::getenv("IDP_LOG_LEVEL");
  logger->set_level(lvl ? spdlog::level::from_str(lvl) : spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

} // namespace idp::util
