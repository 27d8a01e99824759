// bench/seed_clone: creating a seeded api-database environment's database by cloning the
// seeded template (what the local driver does) beside replaying the seed into an empty
// database (the baseline), in the same run, on a private PostgreSQL cluster. The seed is
// plain SQL of at least 50 MB. Also shown: initdb and cluster start, and the clone with
// PostgreSQL 15's other strategy (WAL_LOG) to justify FILE_COPY.
//
//   build/bench/bench_seed_clone [--seed-mb 50] [--runs 3] [--rows-per-insert 500]
//
// --rows-per-insert 1 makes the seed look like `pg_dump --inserts` (one statement per row).
//
// Needs root (the cluster runs as an unprivileged user) or a non-root user that may run
// PostgreSQL itself.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "drivers/local/databases.hpp"
#include "drivers/local/postgres_cluster.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::drivers::local;

namespace {

double median(std::vector<double> v) {
  if (v.empty()) {
    return 0;
  }
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Plain SQL: one table, INSERTs of `per_insert` rows of ~1 KB each, until `bytes`.
std::string make_seed(size_t bytes, int per_insert) {
  std::string sql = "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, payload text NOT NULL);\n"
                    "CREATE INDEX items_name ON items (name);\n";
  sql.reserve(bytes + 4096);
  int id = 0;
  while (sql.size() < bytes) {
    sql += "INSERT INTO items (id, name, payload) VALUES ";
    for (int i = 0; i < per_insert; ++i, ++id) {
      // Different payloads (hex of a hash chain) so the data does not compress to nothing.
      std::string payload;
      std::string h = util::sha256_hex(std::to_string(id));
      while (payload.size() < 960) {
        payload += h;
        h = util::sha256_hex(h);
      }
      sql += (i ? ",(" : "(") + std::to_string(id) + ",'item-" + std::to_string(id % 9973) + "','" + payload + "')";
    }
    sql += ";\n";
  }
  return sql;
}

void fail(const std::string& what, const Error& e) {
  std::fprintf(stderr, "bench/seed_clone: %s: %s\n", what.c_str(), e.full_message().c_str());
  std::exit(1);
}

} // namespace

int main(int argc, char** argv) {
  size_t seed_mb = 50;
  int runs = 3;
  int per_insert = 500;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--seed-mb") == 0) {
      seed_mb = static_cast<size_t>(std::max(1, std::atoi(argv[i + 1])));
    } else if (std::strcmp(argv[i], "--runs") == 0) {
      runs = std::max(1, std::atoi(argv[i + 1]));
    } else if (std::strcmp(argv[i], "--rows-per-insert") == 0) {
      per_insert = std::max(1, std::atoi(argv[i + 1]));
    }
  }
  if (!find_postgres_bin_dir("")) {
    std::fprintf(stderr, "bench/seed_clone: PostgreSQL is not installed\n");
    return 1;
  }
  auto tmp = util::make_temp_dir("idp-bench-seed");
  if (!tmp) {
    fail("temporary directory", tmp.error());
  }
  ::chmod(tmp->c_str(), 0711); // the cluster's user walks through it to the home
  std::string home = *tmp + "/home";
  (void)util::ensure_dir(home, 0700);
  ClusterOptions co;
  co.dir = home + "/postgres";
  co.state_dir = home + "/db";
  co.home = home;
  co.cluster_name = "idp-bench";
  PostgresCluster cluster(co);
  DatabaseManager dbs(cluster, home + "/db/master.key");
  if (auto r = cluster.ensure_running(); !r) {
    fail("starting PostgreSQL", r.error());
  }
  int64_t init_ms = cluster.init_ms();
  int64_t start_ms = cluster.start_ms();
  if (auto r = dbs.harden(); !r) {
    fail("harden", r.error());
  }

  std::string sql = make_seed(seed_mb * 1024 * 1024, per_insert);
  SeedSource seed{"/bench/repo", "db/seed.sql", sql};
  auto note = [](const std::string&) {};
  auto record = [](int i) {
    return DatabaseRecord{database_name_for("bench-" + std::to_string(i)), util::random_hex(8), "", "", ""};
  };

  // The first environment seeds the template (one replay, as the seed role) and clones it.
  int64_t t0 = util::steady_ms();
  if (auto r = dbs.ensure(record(0), seed, note); !r) {
    fail("first environment", r.error());
  }
  double first_ms = static_cast<double>(util::steady_ms() - t0);

  std::vector<double> clone_ms, replay_ms, wal_ms;
  for (int i = 1; i <= runs; ++i) {
    t0 = util::steady_ms();
    auto r = dbs.ensure(record(i), seed, note);
    if (!r) {
      fail("clone", r.error());
    }
    clone_ms.push_back(static_cast<double>(util::steady_ms() - t0));
  }
  // Baseline: an empty database for the environment, then the seed replayed as its role.
  for (int i = 0; i < runs; ++i) {
    DatabaseRecord rec = record(100 + i);
    t0 = util::steady_ms();
    if (auto r = dbs.ensure(rec, std::nullopt, note); !r) {
      fail("empty database", r.error());
    }
    auto conn = PgConnection::connect(cluster.tcp_params(rec.name, *dbs.password_for(rec), rec.name));
    if (!conn) {
      fail("connect", conn.error());
    }
    if (auto r = conn->exec(sql, "replay"); !r) {
      fail("replay", r.error());
    }
    replay_ms.push_back(static_cast<double>(util::steady_ms() - t0));
  }
  // PostgreSQL 15's default strategy, for comparison.
  std::string tmpl = seed_template_name(seed.repo, seed.content);
  auto admin = cluster.admin();
  if (!admin) {
    fail("admin", admin.error());
  }
  for (int i = 0; i < runs; ++i) {
    std::string name = "idp_bench_wal_" + std::to_string(i);
    t0 = util::steady_ms();
    if (auto r = admin->exec("CREATE DATABASE " + *admin->identifier(name) + " TEMPLATE " + *admin->identifier(tmpl) +
                                 " STRATEGY WAL_LOG",
                             "wal_log clone");
        !r) {
      fail("wal_log clone", r.error());
    }
    wal_ms.push_back(static_cast<double>(util::steady_ms() - t0));
  }
  auto size = admin->query("SELECT pg_database_size($1)", {tmpl}, "size");
  double db_mb = size && !size->empty() ? std::atof((*size)[0][0].value_or("0").c_str()) / 1048576.0 : 0;

  double c = median(clone_ms), p = median(replay_ms), w = median(wal_ms);
  std::printf("bench/seed_clone: seed %.1f MB of SQL, %d row(s) per INSERT (database %.1f MB), %d runs each, "
              "medians\n",
              static_cast<double>(sql.size()) / 1048576.0, per_insert, db_mb, runs);
  std::printf("  %-58s %8lld ms\n", "cluster: initdb (first use of a home)", static_cast<long long>(init_ms));
  std::printf("  %-58s %8lld ms\n", "cluster: start until it accepts connections", static_cast<long long>(start_ms));
  std::printf("  %-58s %8.0f ms\n", "first environment: seed the template once + clone", first_ms);
  std::printf("  %-58s %8.0f ms\n", "baseline: empty database + replay the seed as its role", p);
  std::printf("  %-58s %8.0f ms   (goal: under 1000 ms)\n", "clone: CREATE DATABASE … TEMPLATE (FILE_COPY) + REASSIGN",
              c);
  std::printf("  %-58s %8.0f ms\n", "clone with STRATEGY WAL_LOG (not used)", w);
  std::printf("  %-58s %8.1fx\n", "ratio (replay / clone)", c > 0 ? p / c : 0.0);
  std::printf("reproduce: cmake --build build --target bench_seed_clone && build/bench/bench_seed_clone --seed-mb %zu "
              "--runs %d --rows-per-insert %d\n",
              seed_mb, runs, per_insert);

  cluster.stop();
  (void)util::remove_all(*tmp);
  return 0;
}
