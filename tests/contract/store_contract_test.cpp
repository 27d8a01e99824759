// Runs the StateStore contract (store_contract.cpp) against every store.

#include "contract/store_contract.hpp"
#include "fakes/in_memory_store.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace idp::testing {
namespace {

std::unique_ptr<store::StateStore> make_sqlite(const std::string& tmpdir) {
  auto opened = store::sqlite::SqliteStore::open(tmpdir + "/state.db");
  if (!opened) {
    ADD_FAILURE() << opened.error().full_message();
    return nullptr;
  }
  return std::move(*opened);
}

std::unique_ptr<store::StateStore> make_in_memory(const std::string&) { return std::make_unique<InMemoryStore>(); }

} // namespace

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreContract, ::testing::Values(StoreFactory{"sqlite", make_sqlite}),
                         store_factory_name);
INSTANTIATE_TEST_SUITE_P(InMemory, StoreContract, ::testing::Values(StoreFactory{"in_memory", make_in_memory}),
                         store_factory_name);

} // namespace idp::testing
