#include "probes/disk_probe.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <string>
#include <utility>

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include "collector/fd_limit.h"

namespace vigie {

struct DiskProbe::Shared {
  // Guards `io`: a pool thread posts under the lock, and the probe's destructor
  // clears it under the lock, so nothing is posted to a loop that may be gone.
  std::mutex mu;
  boost::asio::io_context* io = nullptr;
  DiskProbe* probe = nullptr;  // loop thread only
};

namespace {

// Where a job is, for the timeout detail: the call a hung file system blocks in.
enum class Phase : int {
  queued,
  statvfs,
  create,
  write,
  fsync,
  close,
  reopen,
  read,
  rename,
  unlink,
  done,
};

const char* phaseName(Phase p) {
  static constexpr const char* kNames[] = {
      "wait for a disk worker", "statvfs", "create", "write",  "fsync", "close",
      "open for reading",       "read",    "rename", "unlink", "end"};
  return kNames[static_cast<int>(p)];
}

}  // namespace

// One submission to the pool. The pool thread advances `phase`; the loop reads it
// for the timeout detail and sets `abandoned` when nobody waits for the job.
struct DiskProbe::Job {
  std::uint64_t attempt = 0;
  std::string file;  // the probe file this job creates
  SteadyClock::time_point submitted{};
  std::atomic<Phase> phase{Phase::queued};
  std::atomic<bool> abandoned{false};
};

namespace {

constexpr std::size_t kPayloadBytes = 64;
constexpr std::size_t kOwnPoolThreads = 1;

std::atomic<std::uint64_t> g_file_counter{0};

std::string humanBytes(double bytes) {
  static constexpr std::array<const char*, 6> kUnits = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  std::size_t u = 0;
  while (bytes >= 1024 && u + 1 < kUnits.size()) {
    bytes /= 1024;
    ++u;
  }
  if (u == 0) return fmt::format("{:.0f} B", bytes);
  return fmt::format("{:.1f} {}", bytes, kUnits[u]);
}

std::string errnoText(int err) { return std::strerror(err); }

// No descriptor left for open(): vigie's limit, not the volume's fault.
Result outOfDescriptors(int err, const std::string& what, const std::string& file) {
  Result r = Result::failure(Reason::internal,
                             fmt::format("vigie is out of file descriptors (ulimit -n): {} {}: {}",
                                         what, file, errnoText(err)));
  r.out_of_descriptors = true;
  return r;
}

Result writeFailure(int err, const std::string& what, const std::string& file) {
  if (isOutOfDescriptors(err)) return outOfDescriptors(err, what, file);
  const std::string detail = fmt::format("{} {}: {}", what, file, errnoText(err));
  switch (err) {
    case EROFS:
      return Result::failure(Reason::read_only, detail);
    case ENOSPC:
    case EDQUOT:
      return Result::failure(Reason::disk_full, detail);
    case EACCES:
    case EPERM:
      return Result::failure(Reason::permission, detail);
    case ENOENT:
      return Result::failure(Reason::disk_read, "path does not exist: " + detail);
    default:
      return Result::failure(Reason::disk_write, detail);
  }
}

Result readFailure(int err, const std::string& what, const std::string& file) {
  if (isOutOfDescriptors(err)) return outOfDescriptors(err, what, file);
  const std::string detail = fmt::format("{} {}: {}", what, file, errnoText(err));
  if (err == EACCES || err == EPERM) return Result::failure(Reason::permission, detail);
  return Result::failure(Reason::disk_read, detail);
}

// Full write/read loops: a regular file may still return short counts (signals).
bool writeAll(int fd, const unsigned char* data, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

ssize_t readAll(int fd, unsigned char* data, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, data + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  return static_cast<ssize_t>(got);
}

std::string probeFileName(const std::string& dir) {
  return dir + (dir.ends_with('/') ? "" : "/") +
         fmt::format(".vigie-probe-{}-{}", ::getpid(), ++g_file_counter);
}

void setPhase(std::atomic<Phase>* phase, Phase p) {
  if (phase) phase->store(p, std::memory_order_relaxed);
}

std::string describeTimeout(SteadyClock::duration d) {
  const auto ms = std::chrono::round<std::chrono::milliseconds>(d).count();
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

// The write round trip on file `base`; `created` names the file to remove
// afterwards (empty: none).
Result writeRoundTrip(const std::string& base, std::string& created, std::atomic<Phase>* phase) {
  std::array<unsigned char, kPayloadBytes> payload{};
  {
    std::random_device rd;
    std::mt19937 gen(rd());
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& b : payload) b = static_cast<unsigned char>(byte(gen));
  }

  setPhase(phase, Phase::create);
  int fd = ::open(base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return writeFailure(errno, "create", base);
  created = base;
  setPhase(phase, Phase::write);
  if (!writeAll(fd, payload.data(), payload.size())) {
    const int err = errno;
    ::close(fd);
    return writeFailure(err, "write", base);
  }
  setPhase(phase, Phase::fsync);
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return writeFailure(err, "fsync", base);
  }
  // close() can report a delayed write error (NFS).
  setPhase(phase, Phase::close);
  if (::close(fd) != 0) return writeFailure(errno, "close", base);

  setPhase(phase, Phase::reopen);
  fd = ::open(base.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return readFailure(errno, "reopen", base);
  std::array<unsigned char, kPayloadBytes + 1> back{};
  setPhase(phase, Phase::read);
  const ssize_t got = readAll(fd, back.data(), back.size());
  const int read_err = errno;
  ::close(fd);
  if (got < 0) return readFailure(read_err, "read", base);
  if (static_cast<std::size_t>(got) != payload.size() ||
      std::memcmp(back.data(), payload.data(), payload.size()) != 0) {
    return Result::failure(Reason::disk_verify,
                           fmt::format("read back {} bytes from {}, they differ from the {} "
                                       "bytes written",
                                       got, base, payload.size()));
  }

  const std::string renamed = base + ".renamed";
  setPhase(phase, Phase::rename);
  if (::rename(base.c_str(), renamed.c_str()) != 0) return writeFailure(errno, "rename", base);
  created = renamed;
  setPhase(phase, Phase::unlink);
  if (::unlink(renamed.c_str()) != 0) return writeFailure(errno, "unlink", renamed);
  created.clear();
  return Result::ok();
}

// The whole check; `file` is the probe file to use, `phase` (may be null) follows it.
Result checkPath(const DiskSpec& spec, const std::string& file, std::atomic<Phase>* phase) {
  setPhase(phase, Phase::statvfs);
  struct statvfs vfs {};
  if (::statvfs(spec.path.c_str(), &vfs) != 0) {
    const int err = errno;
    if (err == ENOENT) return Result::failure(Reason::disk_read, "path does not exist: " + spec.path);
    if (err == ENOTDIR) {
      return Result::failure(Reason::disk_read, "path is not a directory: " + spec.path);
    }
    return readFailure(err, "statvfs", spec.path);
  }

  const double frsize = static_cast<double>(vfs.f_frsize ? vfs.f_frsize : vfs.f_bsize);
  const double total = static_cast<double>(vfs.f_blocks) * frsize;
  const double avail = static_cast<double>(vfs.f_bavail) * frsize;
  const double ratio = total > 0 ? avail / total : 0;

  Result r = Result::ok();
  r.info["total_bytes"] = fmt::format("{:.0f}", total);
  r.info["free_bytes"] = fmt::format("{:.0f}", avail);
  r.info["free_ratio"] = fmt::format("{:.4f}", ratio);

  auto full = [&](std::string detail) {
    Result f = Result::failure(Reason::disk_full, std::move(detail));
    f.info = r.info;
    return f;
  };
  if (spec.min_free_ratio && total > 0 && ratio < *spec.min_free_ratio) {
    return full(fmt::format("{:.1f}% free ({} of {}), minimum {:g}%", ratio * 100,
                            humanBytes(avail), humanBytes(total), *spec.min_free_ratio * 100));
  }
  if (spec.min_free_bytes && avail < static_cast<double>(*spec.min_free_bytes)) {
    return full(fmt::format("{} free of {}, minimum {}", humanBytes(avail), humanBytes(total),
                            humanBytes(static_cast<double>(*spec.min_free_bytes))));
  }
  // Some file systems (btrfs, many FUSE) report no inode counts at all: skip them.
  if (vfs.f_files > 0) {
    const double inode_ratio = static_cast<double>(vfs.f_favail) / static_cast<double>(vfs.f_files);
    if (vfs.f_favail == 0 || (spec.min_free_ratio && inode_ratio < *spec.min_free_ratio)) {
      return full(fmt::format("{:.1f}% of inodes free ({} of {})", inode_ratio * 100,
                              vfs.f_favail, vfs.f_files));
    }
  }

  if (!spec.write) return r;
  if (vfs.f_flag & ST_RDONLY) {
    Result f = Result::failure(Reason::read_only, spec.path + " is mounted read-only");
    f.info = r.info;
    return f;
  }
  std::string created;
  Result w = writeRoundTrip(file, created, phase);
  if (!created.empty()) {
    setPhase(phase, Phase::unlink);
    ::unlink(created.c_str());
  }
  if (w.status != Status::ok) {
    w.info = r.info;
    return w;
  }
  return r;
}

}  // namespace

Result DiskProbe::runCheck(const DiskSpec& spec) {
  return checkPath(spec, probeFileName(spec.path), nullptr);
}

DiskProbe::DiskProbe(ProbeContext& ctx, DiskSpec spec)
    : ctx_(ctx), spec_(std::move(spec)), shared_(std::make_shared<Shared>()), timer_(ctx.io) {
  pool_ = ctx_.blocking;
  if (pool_ == nullptr) {
    own_pool_ = std::make_unique<WorkerPool>(ctx_.io, kOwnPoolThreads, "vigie-disk");
    pool_ = own_pool_.get();
  }
  shared_->io = &ctx_.io;
  shared_->probe = this;
}

DiskProbe::~DiskProbe() {
  cancel();
  shared_->probe = nullptr;
  std::lock_guard lock(shared_->mu);
  shared_->io = nullptr;
}

void DiskProbe::start(SteadyClock::time_point deadline, Done done) {
  cancel();
  const std::uint64_t attempt = ++attempt_;
  running_ = true;
  done_ = std::move(done);
  started_wall_ = SystemClock::now();
  started_ = SteadyClock::now();
  deadline_ = deadline;

  std::weak_ptr<Shared> weak = shared_;
  timer_.expires_at(deadline);
  // The timer may fire after the probe is gone (destroying it aborts the wait):
  // reach the probe only through the shared block.
  timer_.async_wait([weak, attempt](const boost::system::error_code& ec) {
    if (ec) return;
    auto s = weak.lock();
    if (s && s->probe) s->probe->onDeadline(attempt);
  });

  // The previous job still blocked (a hung mount): wait for it rather than take
  // a second thread for the same path.
  if (job_) {
    waiting_for_job_ = true;
    return;
  }
  submit();
}

void DiskProbe::submit() {
  auto job = std::make_shared<Job>();
  job->attempt = attempt_;
  job->file = probeFileName(spec_.path);
  job->submitted = SteadyClock::now();

  std::weak_ptr<Shared> weak = shared_;
  const bool queued = pool_->submit([weak, job, spec = spec_] {
    Result r;
    if (job->abandoned.load()) {
      r = Result::failure(Reason::timeout, "abandoned before a disk worker was free");
    } else {
      r = checkPath(spec, job->file, &job->phase);
    }
    job->phase.store(Phase::done);
    auto shared = weak.lock();
    if (!shared) return;
    std::lock_guard lock(shared->mu);
    if (shared->io == nullptr) return;
    boost::asio::post(*shared->io, [weak, job, r = std::move(r)]() mutable {
      auto s = weak.lock();
      if (s && s->probe) s->probe->onJobDone(job, std::move(r));
    });
  });
  if (queued) {
    job_ = std::move(job);
    return;
  }
  Result r = Result::failure(
      Reason::timeout, fmt::format("all {} disk workers are busy or stuck", pool_->maxThreads()));
  // done must not run inside start(): deliver it from the loop like any result.
  boost::asio::post(ctx_.io, [weak, attempt = attempt_, r = std::move(r)]() mutable {
    auto s = weak.lock();
    if (s && s->probe) s->probe->finish(attempt, std::move(r));
  });
}

void DiskProbe::onJobDone(const std::shared_ptr<Job>& job, Result result) {
  if (job_ == job) job_.reset();
  if (!running_) return;
  if (job->attempt == attempt_) {
    finish(attempt_, std::move(result));
  } else if (waiting_for_job_ && !job_) {
    // The blocked job of an earlier attempt returned in time: run ours now.
    waiting_for_job_ = false;
    submit();
  }
}

void DiskProbe::onDeadline(std::uint64_t attempt) {
  if (!running_ || attempt != attempt_) return;
  const std::string timeout = describeTimeout(deadline_ - started_);
  std::string detail;
  // Phase::done: the job just ended, its completion is still on its way to the loop.
  if (!job_ || job_->phase.load() == Phase::done) {
    detail = fmt::format("no result within {}", timeout);
  } else {
    const Phase phase = job_->phase.load();
    const std::string& target = phase == Phase::statvfs ? spec_.path : job_->file;
    if (job_->attempt == attempt) {
      if (phase == Phase::queued) {
        detail =
            fmt::format("no disk worker free within {}: {} of {} busy (stuck on a hung mount?)",
                        timeout, pool_->busy(), pool_->maxThreads());
      } else {
        detail = fmt::format("{} of {} did not return within {} (hung file system?)",
                             phaseName(phase), target, timeout);
      }
    } else if (phase == Phase::queued) {
      detail = fmt::format(
          "the previous attempt still waits for a disk worker: {} of {} busy (stuck on a hung "
          "mount?)",
          pool_->busy(), pool_->maxThreads());
    } else {
      const double age =
          std::chrono::duration<double>(SteadyClock::now() - job_->submitted).count();
      detail = fmt::format(
          "the previous attempt's {} of {} has not returned for {:.1f} s (hung "
          "file system?)",
          phaseName(phase), target, age);
    }
    // Our own job, if still queued, need not run any more.
    if (job_->attempt == attempt) job_->abandoned.store(true);
  }
  finish(attempt, Result::failure(Reason::timeout, std::move(detail)));
}

void DiskProbe::cancel() {
  running_ = false;
  waiting_for_job_ = false;
  done_ = nullptr;
  timer_.cancel();
  if (job_) job_->abandoned.store(true);
}

void DiskProbe::finish(std::uint64_t attempt, Result result) {
  if (!running_ || attempt != attempt_) return;
  running_ = false;
  waiting_for_job_ = false;
  timer_.cancel();
  if (result.started == SystemClock::time_point{}) result.started = started_wall_;
  result.duration = std::chrono::duration<double>(SteadyClock::now() - started_).count();
  Done done = std::move(done_);
  done_ = nullptr;
  done(std::move(result));
}

}  // namespace vigie
