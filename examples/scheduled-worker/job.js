// A scheduled job for mini-idp preview environments (scheduled-worker template).
// Each run prints a few lines and exits: its output lands in `idp logs`, its exit code in
// `idp status` (job runs). JOB_SLEEP_MS makes a run take longer, JOB_EXIT_CODE sets the
// exit code.
'use strict';

const run = process.env.IDP_JOB_RUN || '?';
const sleepMs = Number(process.env.JOB_SLEEP_MS || 0);
const exitCode = Number(process.env.JOB_EXIT_CODE || 0);

console.log(`scheduled-worker run ${run} started at ${new Date().toISOString()}`);
if (process.env.DATABASE_URL) {
  console.log('a database is available to this job');
}
setTimeout(() => {
  console.log(`scheduled-worker run ${run} finished with exit code ${exitCode}`);
  process.exit(exitCode);
}, sleepMs);
