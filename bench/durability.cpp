// bench/durability: what synchronous=FULL costs the SQLite state store. Creates, extends and
// destroys environments through the store (one transaction each, with the events the
// controller records) with synchronous=FULL — what `idp serve` uses, so that an
// acknowledged write survives a power loss — beside synchronous=NORMAL in the same run,
// rounds alternating so that both see the same machine. Prints operations per second of
// each, the ratio, and the command that reproduces the run.
//
//   build/bench/bench_durability [--envs 200] [--rounds 3] [--dir DIR]
//
// DIR (default: the current directory) must be on the disk to measure: on tmpfs fsync
// costs nothing and the ratio says nothing.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/vfs.h>
#include <vector>

#include "store/sqlite/sqlite_store.hpp"
#include "util/fs.hpp"
#include "util/numbers.hpp"
#include "util/time.hpp"

using namespace idp;
using store::sqlite::SqliteOptions;
using store::sqlite::SqliteStore;
using store::sqlite::SyncMode;

namespace {

struct Options {
  int envs = 200;
  int rounds = 3;
  std::string dir = ".";
};

struct Rates {
  double create = 0; // operations per second
  double extend = 0;
  double destroy = 0;
  double all = 0;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "bench_durability: %s\nusage: bench_durability [--envs N] [--rounds N] [--dir DIR]\n",
               why.c_str());
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) {
      usage("missing value for " + a);
    }
    std::string v = argv[++i];
    if (a == "--envs" || a == "--rounds") {
      auto n = util::parse_int<int>(v, 1, 1000000);
      if (!n) {
        usage(a + ": " + n.error().message);
      }
      (a == "--envs" ? o.envs : o.rounds) = *n;
    } else if (a == "--dir") {
      o.dir = v;
    } else {
      usage("unknown option " + a);
    }
  }
  return o;
}

std::string filesystem_of(const std::string& dir) {
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) != 0) {
    return "unknown filesystem";
  }
  switch (static_cast<unsigned long>(fs.f_type)) {
  case 0x01021994UL: return "tmpfs: fsync costs nothing here, the ratio says nothing";
  case 0xEF53UL: return "ext4";
  case 0x58465342UL: return "xfs";
  case 0x9123683EUL: return "btrfs";
  case 0x794C7630UL: return "overlayfs";
  default: {
    char buf[32];
    std::snprintf(buf, sizeof buf, "filesystem 0x%lx", static_cast<unsigned long>(fs.f_type));
    return buf;
  }
  }
}

core::Event event(const std::string& env, const char* action, util::Millis at) {
  core::Event e;
  e.env = env;
  e.at = at;
  e.actor = "bench";
  e.action = action;
  e.reason = std::string(action) + " by bench_durability";
  return e;
}

void fail(const char* what, const Error& e) {
  std::fprintf(stderr, "bench_durability: %s: %s\n", what, e.full_message().c_str());
  std::exit(1);
}

// One round: `envs` creates, then as many extends, then as many destroys, each timed.
Rates one_round(const std::string& dir, SyncMode mode, int envs) {
  auto opened = SqliteStore::open(util::path_join(dir, "state.db"), SqliteOptions{mode});
  if (!opened) {
    fail("open", opened.error());
  }
  SqliteStore& store = **opened;
  util::Millis now = util::SystemClock().now_ms();
  auto name = [](int i) { return "bench-" + std::to_string(i); };

  int64_t t0 = util::steady_ms();
  for (int i = 0; i < envs; ++i) {
    core::Environment env;
    env.name = name(i);
    env.repo = "/src/app";
    env.branch = env.name;
    env.source_key = "/src/app\n" + env.name;
    env.commit = "c0ffee";
    env.template_name = "api-service";
    env.created_at = now;
    env.expires_at = now + 3600000;
    if (auto r = store.insert_environment(env, {event(env.name, "create", now)}); !r) {
      fail("create", r.error());
    }
  }
  int64_t t1 = util::steady_ms();
  for (int i = 0; i < envs; ++i) {
    auto r = store.update_environment(name(i),
                                      [&](core::Environment& env, std::vector<core::Event>& events) -> Expected<void> {
                                        env.expires_at += 3600000;
                                        env.updated_at = now;
                                        events.push_back(event(env.name, "extend", now));
                                        return {};
                                      });
    if (!r) {
      fail("extend", r.error());
    }
  }
  int64_t t2 = util::steady_ms();
  for (int i = 0; i < envs; ++i) {
    auto r = store.update_environment(name(i),
                                      [&](core::Environment& env, std::vector<core::Event>& events) -> Expected<void> {
                                        env.desired = core::Desired::absent;
                                        env.generation += 1;
                                        env.updated_at = now;
                                        events.push_back(event(env.name, "destroy", now));
                                        return {};
                                      });
    if (!r) {
      fail("destroy", r.error());
    }
  }
  int64_t t3 = util::steady_ms();
  auto rate = [&](int64_t ms, int n) { return ms > 0 ? n * 1000.0 / static_cast<double>(ms) : 0.0; };
  return {rate(t1 - t0, envs), rate(t2 - t1, envs), rate(t3 - t2, envs), rate(t3 - t0, 3 * envs)};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

Rates median_of(const std::vector<Rates>& rounds) {
  std::vector<double> c, e, d, a;
  for (const auto& r : rounds) {
    c.push_back(r.create);
    e.push_back(r.extend);
    d.push_back(r.destroy);
    a.push_back(r.all);
  }
  return {median(c), median(e), median(d), median(a)};
}

} // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  std::string base = util::absolute_path(o.dir);
  std::string tmpl = util::path_join(base, "idp-bench-durability-XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    std::fprintf(stderr, "bench_durability: cannot create a directory in %s: %s\n", base.c_str(), std::strerror(errno));
    return 1;
  }
  std::string work = buf.data();

  std::vector<Rates> full;
  std::vector<Rates> normal;
  for (int r = 0; r < o.rounds; ++r) {
    // A fresh database per round and mode, so that neither meets a bigger file.
    for (SyncMode mode : {SyncMode::full, SyncMode::normal}) {
      std::string dir = util::path_join(work, (mode == SyncMode::full ? "full-" : "normal-") + std::to_string(r));
      if (auto e = util::ensure_dir(dir); !e) {
        fail("mkdir", e.error());
      }
      (mode == SyncMode::full ? full : normal).push_back(one_round(dir, mode, o.envs));
    }
  }
  (void)util::remove_all(work); // best effort: a leftover directory only wastes a little space

  Rates f = median_of(full);
  Rates n = median_of(normal);
  std::printf("bench/durability: SQLite state store (WAL), one transaction per operation, %d environments x %d rounds "
              "(median of rounds)\n",
              o.envs, o.rounds);
  std::printf("directory: %s (%s)\n\n", base.c_str(), filesystem_of(base).c_str());
  std::printf("%-20s %12s %12s %12s %12s\n", "ops/s", "create", "extend", "destroy", "all");
  std::printf("%-20s %12.0f %12.0f %12.0f %12.0f\n", "synchronous=FULL", f.create, f.extend, f.destroy, f.all);
  std::printf("%-20s %12.0f %12.0f %12.0f %12.0f\n", "synchronous=NORMAL", n.create, n.extend, n.destroy, n.all);
  std::printf("%-20s %12.2f %12.2f %12.2f %12.2f\n\n", "FULL / NORMAL", n.create > 0 ? f.create / n.create : 0,
              n.extend > 0 ? f.extend / n.extend : 0, n.destroy > 0 ? f.destroy / n.destroy : 0,
              n.all > 0 ? f.all / n.all : 0);
  std::printf("reproduce: %s --envs %d --rounds %d --dir %s\n", argv[0], o.envs, o.rounds, base.c_str());
  return 0;
}
