#include "sources/delivery_log.hpp"

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>

namespace idp::sources {

namespace {
constexpr int k_gather_ms = 5;  // how long the writer lets keys gather before a write
constexpr size_t k_batch = 512; // or until this many wait
} // namespace

DeliveryLog::DeliveryLog(store::StateStore& store) : m_store(store) {
  m_thread = std::thread([this] { writer(); });
}

DeliveryLog::~DeliveryLog() {
  {
    std::lock_guard lk(m_mu);
    m_stop = true;
  }
  m_wake.notify_one();
  m_thread.join();
}

Expected<bool> DeliveryLog::record(const std::vector<std::string>& keys, util::Millis at) {
  // Held across the store's lookup: two copies of one delivery arriving together are
  // looked up one after the other, and the second finds the first's keys waiting.
  std::unique_lock lk(m_mu);
  if (m_failed) {
    return Unexpected(*m_failed);
  }
  for (const auto& key : keys) {
    if (m_waiting_keys.count(key) != 0) {
      return false;
    }
  }
  IDP_TRY_ASSIGN(bool seen, m_store.any_delivery_recorded(keys));
  if (seen) {
    return false;
  }
  const bool was_empty = m_queue.empty();
  for (const auto& key : keys) {
    if (m_waiting_keys.insert(key).second) {
      m_queue.push_back({key, at});
      m_queued += 1;
    }
  }
  const bool full = m_queue.size() >= k_batch;
  lk.unlock();
  if (was_empty || full) {
    // The first key of a batch wakes the writer, which then lets more gather; a writer
    // busy with a batch takes this one when it is done, without a wake-up.
    m_wake.notify_one();
  }
  return true;
}

Expected<void> DeliveryLog::flush() {
  std::unique_lock lk(m_mu);
  const uint64_t target = m_queued;
  m_written.wait(lk, [&] { return m_landed >= target || m_failed; });
  if (m_landed >= target) {
    return {};
  }
  return Unexpected(*m_failed);
}

void DeliveryLog::writer() {
  std::unique_lock lk(m_mu);
  int64_t backoff_ms = 0;
  std::vector<store::DeliveryKey> batch;
  while (true) {
    m_wake.wait(lk, [&] { return m_stop || !m_queue.empty(); });
    if (m_queue.empty()) {
      return; // stopping, nothing waits
    }
    // Gather a batch: a transaction costs about as much for one delivery as for hundreds,
    // and nobody waits for this one (requests were answered already).
    m_wake.wait_for(lk, std::chrono::milliseconds(k_gather_ms), [&] { return m_stop || m_queue.size() >= k_batch; });
    batch.swap(m_queue);
    lk.unlock();
    auto wrote = m_store.insert_delivery_keys(batch);
    lk.lock();
    if (wrote) {
      for (const auto& k : batch) {
        m_waiting_keys.erase(k.key);
      }
      m_landed += batch.size();
      batch.clear();
      m_failed.reset();
      backoff_ms = 0;
      m_written.notify_all();
      continue;
    }
    // Put back in front of what arrived meanwhile; the keys stay waiting (so copies are
    // still duplicates) and new deliveries are refused until a write lands.
    if (!m_failed) {
      spdlog::error("webhook: cannot record {} delivery keys: {}", batch.size(), wrote.error().full_message());
    }
    m_failed = wrote.error();
    m_written.notify_all();
    batch.insert(batch.end(), std::make_move_iterator(m_queue.begin()), std::make_move_iterator(m_queue.end()));
    m_queue = std::move(batch);
    batch = {};
    if (m_stop) {
      spdlog::error("webhook: {} delivery keys not recorded at shutdown: their redeliveries will be taken again",
                    m_queue.size());
      return;
    }
    backoff_ms = std::clamp<int64_t>(backoff_ms * 2, 50, 2000);
    m_wake.wait_for(lk, std::chrono::milliseconds(backoff_ms), [&] { return m_stop; });
  }
}

} // namespace idp::sources
