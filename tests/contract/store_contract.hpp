#pragma once
// The StateStore contract suite (osquery CREATE_DATABASE_TESTS style): every store
// implementation is run through the same TEST_Ps in store_contract.cpp.
//
// To add a store, link store_contract.cpp into a test executable and instantiate:
//   INSTANTIATE_TEST_SUITE_P(Postgres, StoreContract,
//                            ::testing::Values(StoreFactory{"postgres", make_postgres}),
//                            store_factory_name);
// The factory gets a fresh temporary directory per test (removed when the test passed,
// kept when it failed) and returns a new, empty store, or nullptr after reporting why
// with ADD_FAILURE.

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include <gtest/gtest.h>

#include "store/state_store.hpp"
#include "support/test_support.hpp"

// IDP_ASSERT_OK(expr): expr (an Expected) succeeded, or the test stops with its error.
#define IDP_ASSERT_OK(expr)                                                                                            \
  do {                                                                                                                 \
    auto&& idp_ok_result_ = (expr);                                                                                    \
    ASSERT_TRUE(idp_ok_result_.has_value()) << #expr << ": " << idp_ok_result_.error().full_message();                 \
  } while (false)

// IDP_ASSERT_OK_ASSIGN(decl, expr): `decl = *expr`, or the test stops with expr's error.
#define IDP_ASSERT_OK_ASSIGN(decl, expr) IDP_ASSERT_OK_ASSIGN_IMPL(IDP_CONCAT(idp_ok_tmp_, __LINE__), decl, expr)
#define IDP_ASSERT_OK_ASSIGN_IMPL(tmp, decl, expr)                                                                     \
  auto tmp = (expr);                                                                                                   \
  ASSERT_TRUE(tmp.has_value()) << #expr << ": " << tmp.error().full_message();                                         \
  decl = std::move(*tmp)

namespace idp::testing {

struct StoreFactory {
  std::string name; // the test name suffix, e.g. "sqlite"
  std::function<std::unique_ptr<store::StateStore>(const std::string& tmpdir)> make;
};

// Prints the name in gtest messages (instead of the bytes of the std::function).
inline void PrintTo(const StoreFactory& f, std::ostream* os) { *os << f.name; }

// For INSTANTIATE_TEST_SUITE_P: names each test after its store.
inline std::string store_factory_name(const ::testing::TestParamInfo<StoreFactory>& info) { return info.param.name; }

class StoreContract : public ::testing::TestWithParam<StoreFactory> {
protected:
  void SetUp() override {
    m_store = GetParam().make(m_tmp.path());
    ASSERT_NE(m_store, nullptr) << "the " << GetParam().name << " factory made no store";
  }

  store::StateStore& store() { return *m_store; }
  const std::string& tmpdir() const { return m_tmp.path(); }

private:
  TempDir m_tmp{"idp-store-contract"}; // declared first: outlives the store using it
  std::unique_ptr<store::StateStore> m_store;
};

} // namespace idp::testing
