#pragma once
// DeliveryLog: the webhook receiver's memory of the deliveries it took (each one's id and a
// hash of its signed body), so that a redelivery or a replay is answered "duplicate".
//
// record() answers at once: it looks the keys up among those waiting to be written, then
// in the store, and a new delivery's keys join the waiting ones. A writer thread of the
// log's own stores what waits in one transaction per batch: woken by the first key, it
// lets keys gather for 5 ms (or until 512 wait), then writes them all. A webhook so costs
// a lookup, not a commit of its own: signed ingest went from about 0.45 of /healthz's
// rate to 0.55, and idp serve's CPU time from 0.29 to 0.23 ms a webhook
// (bench/webhook_ingest; a commit each was 40 us of it).
//
// What that gives up: a delivery is answered before its keys are on disk, within the
// writer's next batch (about 5 ms). A daemon killed in between forgets
// those keys, so GitHub's redelivery of such a delivery is taken again; its work, queued
// in memory, was lost with the daemon anyway (the startup sync finds the branch), and a
// push deploys only a branch's current head. While the store refuses writes, record()
// fails with the store's error (the receiver answers 503 and GitHub redelivers later) and
// the writer retries what waits, backing off up to 2 s, until it lands.
// Thread-safe.

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "store/state_store.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::sources {

class DeliveryLog {
public:
  explicit DeliveryLog(store::StateStore& store);
  // Writes what waits (one attempt), then stops the writer.
  ~DeliveryLog();
  DeliveryLog(const DeliveryLog&) = delete;
  DeliveryLog& operator=(const DeliveryLog&) = delete;

  // True, recording them all, when none of `keys` was recorded before; false, recording
  // none, when any was. An error when the store cannot be read, or refuses writes now.
  Expected<bool> record(const std::vector<std::string>& keys, util::Millis at);

  // Waits until every key recorded so far is in the store; the store's error when its
  // last write failed.
  Expected<void> flush();

private:
  void writer();

  store::StateStore& m_store;
  std::mutex m_mu;
  std::condition_variable m_wake;                 // the writer's: keys queued, or stop
  std::condition_variable m_written;              // flush()'s: a batch landed or failed
  std::unordered_set<std::string> m_waiting_keys; // queued or being written
  std::vector<store::DeliveryKey> m_queue;        // not taken by the writer yet
  std::optional<Error> m_failed;                  // the last write's error, until one lands
  uint64_t m_queued = 0;                          // keys ever queued
  uint64_t m_landed = 0;                          // keys ever written
  bool m_stop = false;
  std::thread m_thread;
};

} // namespace idp::sources
