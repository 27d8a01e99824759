#pragma once
// Locks of the terraform runtime. The driver's own lock (TerraformDriver::m_locks, a
// util::KeyedMutex by environment name): held by apply, destroy and start's cleanup for
// their whole run, so one environment's work directory is prepared and used by one operation at a time. The state
// lock is terraform's: TerraformDriver::unlock (lock.cpp) breaks a stale one, and never
// initialises a work directory while the driver's lock of that environment is held.

#include <string>

#include <sys/types.h>

namespace idp::drivers::terraform {

// The process holding the fcntl write lock of the local-backend state file `state`
// (terraform's state lock, which ends with its process); 0 when none holds it or there is
// no such file.
pid_t local_state_lock_holder(const std::string& state);

} // namespace idp::drivers::terraform
