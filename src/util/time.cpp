#include "util/time.hpp"

#include <cstdio>
#include <ctime>

namespace idp::util {

Millis SystemClock::now_ms() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string format_iso8601(Millis t) {
  time_t secs = static_cast<time_t>(t >= 0 ? t / 1000 : (t - 999) / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<Millis> parse_iso8601(std::string_view s) {
  int y, mo, d, h, mi, sec;
  char rest[16] = {0};
  std::string str(s);
  int n = std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%15s", &y, &mo, &d, &h, &mi, &sec, rest);
  if (n < 7) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
    return std::nullopt;
  }
  std::string_view r(rest);
  int64_t frac_ms = 0;
  if (!r.empty() && r[0] == '.') {
    size_t i = 1;
    int digits = 0;
    while (i < r.size() && r[i] >= '0' && r[i] <= '9') {
      if (digits < 3) {
        frac_ms = frac_ms * 10 + (r[i] - '0');
        ++digits;
      }
      ++i;
    }
    while (digits < 3) {
      frac_ms *= 10;
      ++digits;
    }
    r = r.substr(i);
  }
  if (r != "Z" && r != "+00:00") {
    return std::nullopt;
  }
  struct tm tm {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  time_t secs = timegm(&tm);
  return static_cast<Millis>(secs) * 1000 + frac_ms;
}

std::string format_duration(Millis d) {
  bool neg = d < 0;
  int64_t s = (neg ? -d : d) / 1000;
  char buf[64];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm", static_cast<long long>(s / 60));
  } else if (s < 86400) {
    std::snprintf(buf, sizeof buf, "%lldh %lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>((s % 3600) / 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldd %lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>((s % 86400) / 3600));
  }
  return neg ? std::string("-") + buf : std::string(buf);
}

int64_t steady_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

} // namespace idp::util
