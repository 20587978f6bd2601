#pragma once
/// \file
/// The disk probe: free space and inodes of a path, and optionally a real write,
/// fsync, read-back and rename there, all on the blocking WorkerPool.

#include <cstdint>
#include <memory>
#include <mutex>

#include <boost/asio/steady_timer.hpp>

#include "collector/config.h"
#include "collector/worker_pool.h"
#include "probes/probe.h"
#include "probes/registry.h"

namespace vigie {

/// Checks one path. Outcome, first match wins:
///  - the path cannot be examined (statvfs): disk_read ("path does not exist: /x"),
///    permission;
///  - free space below min_free (a ratio or bytes), or free inodes below the same
///    ratio or none at all: disk_full, "3.1% free (1.2 GiB of 40 GiB), minimum 5%";
///  - with `write`: a mount flagged read-only: read_only. Then a file
///    `.vigie-probe-<pid>-<n>` is created (O_CREAT|O_EXCL), a small random payload
///    written, fsync'ed, read back and compared (disk_verify), renamed, unlinked.
///    Errors: EROFS read_only, ENOSPC/EDQUOT disk_full, EACCES/EPERM permission,
///    ENOENT disk_read "path does not exist", other write errors disk_write, read
///    errors disk_read. The file is removed whatever happens once it was created;
///  - else ok, with info free_bytes, total_bytes, free_ratio.
///
/// The work runs on `ctx.blocking` (the probe makes a private one-thread pool when
/// the context has none, as `vigie probe` does). When the pool refuses the job, the
/// attempt fails at once with Reason::timeout "all N disk workers are busy or stuck".
///
/// Hung file systems (an NFS server gone, a hard mount): the attempt ends by itself
/// at its deadline with Reason::timeout naming the call that did not return, e.g.
/// "create of /mnt/x/.vigie-probe-12-3 did not return within 5s (hung file
/// system?)", or "no disk worker free within 5s: 8 of 8 busy" while its job still
/// waits for a thread. The blocked job keeps its thread (nothing can interrupt a
/// call stuck in the kernel), and a probe has at most one job in the pool: a new
/// attempt while the previous job is still blocked does not take a second thread,
/// it waits for that job until its own deadline ("the previous attempt's write of
/// ... has not returned for 12.3 s"). So a hung mount holds one worker per check
/// on it, and checks on healthy paths keep the others. A job whose attempt was
/// abandoned before a thread picked it up is skipped without touching the disk,
/// and a result that arrives after its attempt ended (deadline, cancel(), the
/// probe destroyed) is dropped. The probe file is removed by the job whatever
/// happens once it was created, even when the attempt already ended.
///
/// Threading: as Probe. The job on the pool thread shares only a small state block
/// with the probe, never the probe itself.
class DiskProbe : public Probe {
 public:
  /// Copies `spec`; `ctx` (its io_context and pool) must outlive the probe.
  DiskProbe(ProbeContext& ctx, DiskSpec spec);
  ~DiskProbe() override;

  DiskProbe(const DiskProbe&) = delete;
  DiskProbe& operator=(const DiskProbe&) = delete;

  /// Starts one attempt (a running one is abandoned first).
  void start(SteadyClock::time_point deadline, Done done) override;
  /// Abandons the running attempt; its done is never called. No-op when idle.
  void cancel() override;

  /// The blocking check itself, exposed for tests; any thread.
  static Result runCheck(const DiskSpec& spec);

 private:
  struct Shared;
  struct Job;
  void submit();
  void onJobDone(const std::shared_ptr<Job>& job, Result result);
  void onDeadline(std::uint64_t attempt);
  void finish(std::uint64_t attempt, Result result);

  ProbeContext& ctx_;
  DiskSpec spec_;
  std::unique_ptr<WorkerPool> own_pool_;  // only when ctx_.blocking is null
  WorkerPool* pool_ = nullptr;
  std::shared_ptr<Shared> shared_;
  boost::asio::steady_timer timer_;  // the attempt's deadline
  std::uint64_t attempt_ = 0;
  bool running_ = false;
  // The job in the pool, from the loop's view: set at submit, cleared when its
  // completion reaches the loop. Outlives its attempt when the file system hangs.
  std::shared_ptr<Job> job_;
  bool waiting_for_job_ = false;  // the running attempt waits for job_ to end
  SystemClock::time_point started_wall_{};
  SteadyClock::time_point started_{};
  SteadyClock::time_point deadline_{};
  Done done_;
};

}  // namespace vigie
