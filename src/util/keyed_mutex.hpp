#pragma once
// One lock per key (an environment, a mirror path, a template name), created on first use
// and freed when nobody holds or waits for it, so a long-running daemon does not keep one
// mutex for every name it ever saw. Keys are independent: holding "a" never delays "b".

#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>

namespace idp::util {

class KeyedMutex {
  struct Entry {
    std::shared_mutex mutex;
    size_t users = 0; // guards holding or waiting for `mutex`; guarded by KeyedMutex::m_mu
  };
  using Entries = std::map<std::string, Entry>;

public:
  // Holds the lock of one key (exclusive or shared) until destroyed or release()d.
  class Guard {
  public:
    Guard(Guard&& o) noexcept : m_owner(o.m_owner), m_it(o.m_it), m_shared(o.m_shared) { o.m_owner = nullptr; }
    Guard& operator=(Guard&& o) noexcept;
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard() { release(); }
    // Unlocks now (the destructor then does nothing). Idempotent.
    void release();

  private:
    friend class KeyedMutex;
    Guard(KeyedMutex* owner, Entries::iterator it, bool shared) : m_owner(owner), m_it(it), m_shared(shared) {}
    KeyedMutex* m_owner;
    Entries::iterator m_it;
    bool m_shared;
  };

  KeyedMutex() = default;
  KeyedMutex(const KeyedMutex&) = delete;
  KeyedMutex& operator=(const KeyedMutex&) = delete;
  // Every Guard must be gone before its KeyedMutex.
  ~KeyedMutex() = default;

  // Blocks until `key` is free, then holds it exclusively. Thread-safe.
  [[nodiscard]] Guard lock(const std::string& key);
  // Blocks until no exclusive holder has `key`, then holds it shared with other readers.
  [[nodiscard]] Guard lock_shared(const std::string& key);
  // Holds `key` exclusively when it is free now; nullopt (without waiting) when not.
  [[nodiscard]] std::optional<Guard> try_lock(const std::string& key);

  // Keys with a holder or a waiter (unused keys are freed), for tests.
  size_t size_for_test() const;
  // Guards holding or waiting for `key`, for tests (a waiter counts once it asked).
  size_t users_for_test(const std::string& key) const;

private:
  Entries::iterator acquire_entry(const std::string& key);
  void release_entry(Entries::iterator it);

  mutable std::mutex m_mu; // guards m_entries and every Entry::users, never held while waiting for a key
  Entries m_entries;
};

} // namespace idp::util
