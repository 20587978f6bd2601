// The disk probe against real directories and real tmpfs mounts (full, read-only),
// and the worker pool with a job that never returns in time.

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "collector/curl_driver.h"
#include "collector/worker_pool.h"
#include "probes/disk_probe.h"
#include "probes/registry.h"

namespace vigie {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "vigie-disk-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A tmpfs mounted for one test, unmounted (lazily, so a failed test cannot leave it busy).
class Tmpfs {
 public:
  explicit Tmpfs(const std::string& dir, const char* options) : dir_(dir) {
    mounted_ = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, options) == 0;
    if (!mounted_) error_ = errno;
  }
  ~Tmpfs() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  int error() const { return error_; }

 private:
  std::string dir_;
  bool mounted_ = false;
  int error_ = 0;
};

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

// Runs one attempt through the probe on a real loop and pool; nullopt on no answer.
std::optional<Result> probeOnce(const DiskSpec& spec, std::size_t threads = 2) {
  boost::asio::io_context io;
  CurlDriver curl(io);
  WorkerPool pool(io, threads, "disk-test");
  ProbeContext ctx{io, curl, "", &pool};
  DiskProbe probe(ctx, spec);
  auto work = boost::asio::make_work_guard(io);  // run_for must wait for the pool's post
  std::optional<Result> got;
  probe.start(SteadyClock::now() + 5s, [&](Result r) { got = std::move(r); });
  const auto until = SteadyClock::now() + 5s;
  while (!got && SteadyClock::now() < until) io.run_for(20ms);
  return got;
}

TEST(DiskProbe, TempDirSucceedsAndLeavesNothing) {
  TempDir dir;
  DiskSpec spec;
  spec.path = dir.path();
  spec.min_free_ratio = 0.0001;
  auto r = probeOnce(spec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::ok) << r->detail;
  EXPECT_EQ(r->reason, Reason::none);
  EXPECT_TRUE(r->info.count("free_bytes"));
  EXPECT_GT(r->duration, 0);
  EXPECT_TRUE(entries(dir.path()).empty());
}

TEST(DiskProbe, MissingPathFailsClearly) {
  TempDir dir;
  for (bool write : {true, false}) {
    DiskSpec spec;
    spec.path = dir.path() + "/nope";
    spec.write = write;
    auto r = probeOnce(spec);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, Status::fail);
    EXPECT_EQ(r->reason, Reason::disk_read);
    EXPECT_EQ(r->detail, "path does not exist: " + spec.path);
  }
}

TEST(DiskProbe, MinFreeAllFailsDiskFull) {
  TempDir dir;
  ASSERT_TRUE(std::ofstream(dir.path() + "/x") << "some data");  // not an empty fs
  DiskSpec spec;
  spec.path = dir.path();
  spec.min_free_ratio = 1.0;
  auto r = probeOnce(spec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, Reason::disk_full);
  EXPECT_NE(r->detail.find("% free ("), std::string::npos) << r->detail;
  EXPECT_NE(r->detail.find("minimum 100%"), std::string::npos) << r->detail;
}

TEST(DiskProbe, MinFreeBytesAboveTotalFailsDiskFull) {
  TempDir dir;
  DiskSpec spec;
  spec.path = dir.path();
  spec.min_free_bytes = std::uint64_t{1} << 62;
  spec.write = false;
  auto r = probeOnce(spec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, Reason::disk_full);
  EXPECT_NE(r->detail.find("minimum 4096.0 PiB"), std::string::npos) << r->detail;
}

// Fills a tiny tmpfs until ENOSPC. Requires CAP_SYS_ADMIN (the test runs as root here).
void fill(const std::string& dir) {
  const int fd = ::open((dir + "/filler").c_str(), O_WRONLY | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  std::vector<char> block(4096, 'x');
  while (::write(fd, block.data(), block.size()) > 0) {
  }
  ::close(fd);
}

TEST(DiskProbe, FullTmpfs) {
  TempDir dir;
  Tmpfs fs(dir.path(), "size=64k");
  ASSERT_TRUE(fs.mounted()) << "mount tmpfs: " << std::strerror(fs.error());
  fill(dir.path());

  DiskSpec with_min;
  with_min.path = dir.path();
  with_min.min_free_ratio = 0.05;
  auto r = probeOnce(with_min);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, Reason::disk_full);
  EXPECT_NE(r->detail.find("0.0% free (0 B of 64.0 KiB), minimum 5%"), std::string::npos)
      << r->detail;

  // No space threshold: the write itself hits ENOSPC, and its file is removed.
  DiskSpec write_only;
  write_only.path = dir.path();
  r = probeOnce(write_only);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, Reason::disk_full) << r->detail;
  EXPECT_NE(r->detail.find("No space left on device"), std::string::npos) << r->detail;
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"filler"});
}

TEST(DiskProbe, ReadOnlyTmpfs) {
  TempDir dir;
  Tmpfs fs(dir.path(), "ro,size=64k");
  ASSERT_TRUE(fs.mounted()) << "mount tmpfs: " << std::strerror(fs.error());
  DiskSpec spec;
  spec.path = dir.path();
  auto r = probeOnce(spec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, Reason::read_only);
  EXPECT_EQ(r->detail, dir.path() + " is mounted read-only");

  // Space is still checked on a read-only mount when write is off.
  spec.write = false;
  r = probeOnce(spec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::ok) << r->detail;
}

TEST(DiskProbe, CancelledAttemptNeverCallsDone) {
  TempDir dir;
  boost::asio::io_context io;
  CurlDriver curl(io);
  WorkerPool pool(io, 1, "disk-test");
  ProbeContext ctx{io, curl, "", &pool};
  DiskSpec spec;
  spec.path = dir.path();
  DiskProbe probe(ctx, spec);
  auto work = boost::asio::make_work_guard(io);
  int calls = 0;
  probe.start(SteadyClock::now() + 5s, [&](Result) { ++calls; });
  probe.cancel();
  // The job still runs to its end; its late result must be dropped.
  const auto until = SteadyClock::now() + 2s;
  while (pool.busy() + pool.queued() > 0 && SteadyClock::now() < until) io.run_for(10ms);
  io.run_for(50ms);
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(entries(dir.path()).empty());
}

// A job that blocks until released (a hung NFS mount).
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard lock(mu);
      open = true;
    }
    cv.notify_all();
  }
};

TEST(WorkerPool, StuckJobsKeepThePoolBoundedAndShutdownIsQuick) {
  boost::asio::io_context io;
  auto gate = std::make_shared<Gate>();
  WorkerPool pool(io, 2, "pool-test");
  // Two stuck workers, then a queue of 2 * 2; the seventh is refused.
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(pool.submit([gate] { gate->wait(); })) << i;
  }
  EXPECT_FALSE(pool.submit([] {}));
  const auto until = SteadyClock::now() + 2s;
  while (pool.busy() < 2 && SteadyClock::now() < until) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(pool.busy(), 2u);
  EXPECT_EQ(pool.queued(), 4u);
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(pool.stuck(20ms), 2u);
  EXPECT_EQ(pool.stuck(10s), 0u);

  const auto t0 = SteadyClock::now();
  pool.shutdown(100ms);
  EXPECT_LT(SteadyClock::now() - t0, 1s);
  EXPECT_FALSE(pool.submit([] {}));
  gate->release();  // the detached threads end now; they only touch the shared state
}

TEST(WorkerPool, FullPoolMakesTheDiskProbeFailWithTimeout) {
  TempDir dir;
  boost::asio::io_context io;
  CurlDriver curl(io);
  auto gate = std::make_shared<Gate>();
  WorkerPool pool(io, 1, "pool-test");
  ASSERT_TRUE(pool.submit([gate] { gate->wait(); }));
  ASSERT_TRUE(pool.submit([gate] { gate->wait(); }));
  ASSERT_TRUE(pool.submit([gate] { gate->wait(); }));
  ProbeContext ctx{io, curl, "", &pool};
  DiskSpec spec;
  spec.path = dir.path();
  DiskProbe probe(ctx, spec);
  auto work = boost::asio::make_work_guard(io);
  std::optional<Result> got;
  probe.start(SteadyClock::now() + 1s, [&](Result r) { got = std::move(r); });
  EXPECT_FALSE(got);  // never inside start()
  io.run_for(50ms);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->reason, Reason::timeout);
  EXPECT_EQ(got->detail, "all 1 disk workers are busy or stuck");
  pool.shutdown(50ms);
  gate->release();
}

TEST(WorkerPool, RunsJobsAndJoinsIdleThreads) {
  boost::asio::io_context io;
  WorkerPool pool(io, 3, "pool-test");
  std::atomic<int> done{0};
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(pool.submit([&] { ++done; }));
  const auto until = SteadyClock::now() + 2s;
  while (done < 5 && SteadyClock::now() < until) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(done, 5);
  pool.shutdown();
  EXPECT_EQ(pool.busy(), 0u);
}

}  // namespace
}  // namespace vigie
