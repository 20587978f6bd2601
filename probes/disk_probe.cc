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

namespace vigie {

struct DiskProbe::Shared {
  // Guards `io`: a pool thread posts under the lock, and the probe's destructor
  // clears it under the lock, so nothing is posted to a loop that may be gone.
  std::mutex mu;
  boost::asio::io_context* io = nullptr;
  DiskProbe* probe = nullptr;  // loop thread only
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

Result writeFailure(int err, const std::string& what, const std::string& file) {
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

// The write round trip; `created` names the file to remove afterwards (empty: none).
Result writeRoundTrip(const std::string& dir, std::string& created) {
  const std::string base = dir + (dir.ends_with('/') ? "" : "/") +
                           fmt::format(".vigie-probe-{}-{}", ::getpid(), ++g_file_counter);
  std::array<unsigned char, kPayloadBytes> payload{};
  {
    std::random_device rd;
    std::mt19937 gen(rd());
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& b : payload) b = static_cast<unsigned char>(byte(gen));
  }

  int fd = ::open(base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return writeFailure(errno, "create", base);
  created = base;
  if (!writeAll(fd, payload.data(), payload.size())) {
    const int err = errno;
    ::close(fd);
    return writeFailure(err, "write", base);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return writeFailure(err, "fsync", base);
  }
  // close() can report a delayed write error (NFS).
  if (::close(fd) != 0) return writeFailure(errno, "close", base);

  fd = ::open(base.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return readFailure(errno, "reopen", base);
  std::array<unsigned char, kPayloadBytes + 1> back{};
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
  if (::rename(base.c_str(), renamed.c_str()) != 0) return writeFailure(errno, "rename", base);
  created = renamed;
  if (::unlink(renamed.c_str()) != 0) return writeFailure(errno, "unlink", renamed);
  created.clear();
  return Result::ok();
}

}  // namespace

Result DiskProbe::runCheck(const DiskSpec& spec) {
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
  Result w = writeRoundTrip(spec.path, created);
  if (!created.empty()) ::unlink(created.c_str());
  if (w.status != Status::ok) {
    w.info = r.info;
    return w;
  }
  return r;
}

DiskProbe::DiskProbe(ProbeContext& ctx, DiskSpec spec)
    : ctx_(ctx), spec_(std::move(spec)), shared_(std::make_shared<Shared>()) {
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
  (void)deadline;  // the engine's deadline timer reports the timeout
  cancel();
  const std::uint64_t attempt = ++attempt_;
  running_ = true;
  done_ = std::move(done);
  const auto started = SystemClock::now();
  const auto t0 = SteadyClock::now();

  std::weak_ptr<Shared> weak = shared_;
  const bool queued = pool_->submit([weak, attempt, spec = spec_, started, t0] {
    Result r = runCheck(spec);
    r.started = started;
    r.duration = std::chrono::duration<double>(SteadyClock::now() - t0).count();
    auto shared = weak.lock();
    if (!shared) return;
    std::lock_guard lock(shared->mu);
    if (shared->io == nullptr) return;
    boost::asio::post(*shared->io, [weak, attempt, r = std::move(r)]() mutable {
      auto s = weak.lock();
      if (s && s->probe) s->probe->finish(attempt, std::move(r));
    });
  });
  if (!queued) {
    Result r = Result::failure(
        Reason::timeout,
        fmt::format("all {} disk workers are busy or stuck", pool_->maxThreads()));
    r.started = started;
    // done must not run inside start(): deliver it from the loop like any result.
    boost::asio::post(ctx_.io, [weak, attempt, r = std::move(r)]() mutable {
      auto s = weak.lock();
      if (s && s->probe) s->probe->finish(attempt, std::move(r));
    });
  }
}

void DiskProbe::cancel() {
  running_ = false;
  done_ = nullptr;
}

void DiskProbe::finish(std::uint64_t attempt, Result result) {
  if (!running_ || attempt != attempt_) return;
  running_ = false;
  Done done = std::move(done_);
  done_ = nullptr;
  done(std::move(result));
}

}  // namespace vigie
