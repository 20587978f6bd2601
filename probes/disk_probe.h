#pragma once
/// \file
/// The disk probe: free space and inodes of a path, and optionally a real write,
/// fsync, read-back and rename there, all on the blocking WorkerPool.

#include <cstdint>
#include <memory>
#include <mutex>

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
/// A job that outlives its attempt (cancel(), or the probe destroyed) is ignored.
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
  void finish(std::uint64_t attempt, Result result);

  ProbeContext& ctx_;
  DiskSpec spec_;
  std::unique_ptr<WorkerPool> own_pool_;  // only when ctx_.blocking is null
  WorkerPool* pool_ = nullptr;
  std::shared_ptr<Shared> shared_;
  std::uint64_t attempt_ = 0;
  bool running_ = false;
  Done done_;
};

}  // namespace vigie
