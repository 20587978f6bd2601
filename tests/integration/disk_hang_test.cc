// The disk probe against a real FUSE file system served by this process: one
// whose writes hang as on a hard NFS mount whose server is gone, one whose reads
// lie, and a directory an unprivileged user may not write to. Runs as root
// (mount, /dev/fuse, setuid).

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "collector/config.h"
#include "collector/curl_driver.h"
#include "collector/engine.h"
#include "collector/worker_pool.h"
#include "probes/disk_probe.h"
#include "probes/registry.h"
#include "tests/support/hang_fs.h"
#include "tests/support/sanitizers.h"

namespace vigie {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::HangFs;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "vigie-diskhang-XXXXXX").string();
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

// Names in `dir` as the kernel lists them (through FUSE for a HangFs).
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

bool isMounted(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" " + path + " ") != std::string::npos) return true;
  }
  return false;
}

// A loop and a disk pool as the engine has them, driven by the test's thread.
struct Loop {
  explicit Loop(std::size_t threads = 8)
      : pool(io, threads, "hang-test"), ctx{io, curl, "", &pool}, work(make_work_guard(io)) {}

  // Runs the loop until `done` or `max` has passed; returns done().
  bool runUntil(const std::function<bool()>& done, SteadyClock::duration max) {
    const auto until = SteadyClock::now() + max;
    while (!done() && SteadyClock::now() < until) io.run_for(5ms);
    return done();
  }

  boost::asio::io_context io;
  CurlDriver curl{io};
  WorkerPool pool;
  ProbeContext ctx;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work;
};

// Starts one attempt and runs the loop until its result (nullopt after `max`).
std::optional<Result> attempt(Loop& loop, DiskProbe& probe, SteadyClock::duration timeout,
                              SteadyClock::duration max = 5s) {
  std::optional<Result> got;
  probe.start(SteadyClock::now() + timeout, [&](Result r) { got = std::move(r); });
  loop.runUntil([&] { return got.has_value(); }, max);
  return got;
}

// ---------------------------------------------------------------------------
// Permission denied. First in the file: fork() happens while this process has
// no other thread yet (gtest runs tests in order, ctest one per process).

std::string runAsNobody(const std::string& dir) {
  if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
      ::setresuid(65534, 65534, 65534) != 0) {
    return "setuid failed";
  }
  std::string out;
  for (bool write : {true, false}) {
    Loop loop(1);
    DiskSpec spec;
    spec.path = dir;
    spec.write = write;
    DiskProbe probe(loop.ctx, spec);
    auto r = attempt(loop, probe, 5s);
    if (!r) return "no result";
    out += std::string(statusName(r->status)) + " " + std::string(reasonName(r->reason)) + " " +
           r->detail + "\n";
  }
  return out;
}

TEST(DiskHang, PermissionDeniedForAnUnprivilegedUser) {
  ASSERT_EQ(::geteuid(), 0u) << "this test drops from root to nobody";
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);

  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child is single-threaded from here; it never returns into gtest.
    ::close(fds[0]);
    const std::string out = runAsNobody(dir.path());
    [[maybe_unused]] auto n = ::write(fds[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  const auto until = SteadyClock::now() + 10s;
  for (;;) {
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, 100) < 0 && errno != EINTR) break;
    char buf[512];
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0 || SteadyClock::now() > until) break;
  }
  ::close(fds[0]);
  if (SteadyClock::now() > until) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  // write: true -> permission; write: false (space only) -> ok.
  const std::string file_prefix = dir.path() + "/.vigie-probe-";
  EXPECT_EQ(out.rfind("fail permission create " + file_prefix, 0), 0u) << out;
  EXPECT_NE(out.find(": Permission denied\nok  \n"), std::string::npos) << out;
  EXPECT_TRUE(entries(dir.path()).empty());
}

// ---------------------------------------------------------------------------
// The FUSE file system itself.

TEST(HangFs, ServesFilesAndNeverLeavesAMountBehind) {
  std::string path;
  {
    HangFs hfs;
    ASSERT_TRUE(hfs.mounted()) << hfs.error();
    path = hfs.path();
    EXPECT_TRUE(isMounted(path));
    { std::ofstream(path + "/a") << "hello"; }
    std::ifstream in(path + "/a");
    std::string s;
    in >> s;
    EXPECT_EQ(s, "hello");
    EXPECT_EQ(entries(path), std::vector<std::string>{"a"});
    EXPECT_EQ(hfs.files(), std::vector<std::string>{"a"});
  }
  EXPECT_FALSE(isMounted(path));
  EXPECT_FALSE(fs::exists(path));
}

TEST(HangFs, UnmountsWhileACallerIsBlockedInCreate) {
  auto hfs = std::make_unique<HangFs>();
  ASSERT_TRUE(hfs->mounted()) << hfs->error();
  const std::string path = hfs->path();
  hfs->setMode(HangFs::Mode::hang_writes);
  std::atomic<int> err{0};
  std::atomic<bool> returned{false};
  std::thread caller([&] {
    const int fd = ::open((path + "/f").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    err = fd < 0 ? errno : 0;
    if (fd >= 0) ::close(fd);
    returned = true;
  });
  ASSERT_TRUE(hfs->waitBlocked(1, 2s));
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(returned);  // the kernel request stays pending, as on a hard NFS mount

  const auto t0 = SteadyClock::now();
  hfs.reset();
  EXPECT_LT(SteadyClock::now() - t0, 2s);
  caller.join();
  EXPECT_NE(err, 0);  // EIO from the handler or ENOTCONN from the aborted connection
  EXPECT_FALSE(isMounted(path));
  EXPECT_FALSE(fs::exists(path));
}

// ---------------------------------------------------------------------------
// The probe on the FUSE mount.

TEST(DiskHang, NormalModePassesAndLeavesNothing) {
  HangFs hfs;
  ASSERT_TRUE(hfs.mounted()) << hfs.error();
  Loop loop;
  DiskSpec spec;
  spec.path = hfs.path();
  spec.min_free_ratio = 0.05;
  DiskProbe probe(loop.ctx, spec);
  for (int i = 0; i < 3; ++i) {
    auto r = attempt(loop, probe, 2s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, Status::ok) << r->detail;
    EXPECT_EQ(r->info.at("free_ratio"), "0.9000");
  }
  EXPECT_TRUE(entries(hfs.path()).empty());
  EXPECT_TRUE(hfs.files().empty());
}

TEST(DiskHang, CorruptReadsFailVerifyAndLeaveNothing) {
  HangFs hfs;
  ASSERT_TRUE(hfs.mounted()) << hfs.error();
  hfs.setMode(HangFs::Mode::corrupt_reads);
  Loop loop;
  DiskSpec spec;
  spec.path = hfs.path();
  DiskProbe probe(loop.ctx, spec);
  auto r = attempt(loop, probe, 2s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::fail);
  EXPECT_EQ(r->reason, Reason::disk_verify) << r->detail;
  EXPECT_EQ(r->detail.rfind("read back 64 bytes from " + hfs.path() + "/.vigie-probe-", 0), 0u)
      << r->detail;
  EXPECT_NE(r->detail.find("they differ from the 64 bytes written"), std::string::npos)
      << r->detail;
  // The written file is removed even though the check failed after writing it.
  EXPECT_TRUE(entries(hfs.path()).empty());
  EXPECT_TRUE(hfs.files().empty());

  hfs.setMode(HangFs::Mode::normal);
  r = attempt(loop, probe, 2s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::ok) << r->detail;
}

TEST(DiskHang, HungCreateTimesOutOnTimeWithoutBlockingTheLoop) {
  HangFs hfs;
  ASSERT_TRUE(hfs.mounted()) << hfs.error();
  hfs.setMode(HangFs::Mode::hang_writes);
  Loop loop;
  DiskSpec spec;
  spec.path = hfs.path();
  DiskProbe probe(loop.ctx, spec);

  // A 50 ms ticker on the same loop: it must keep firing while the write hangs.
  boost::asio::steady_timer ticker(loop.io);
  int ticks = 0;
  SteadyClock::duration max_gap{};
  SteadyClock::time_point last_tick = SteadyClock::now();
  std::function<void()> arm = [&] {
    ticker.expires_after(50ms);
    ticker.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      const auto now = SteadyClock::now();
      max_gap = std::max(max_gap, now - last_tick);
      last_tick = now;
      ++ticks;
      arm();
    });
  };
  arm();

  int calls = 0;
  std::optional<Result> got;
  SteadyClock::time_point got_at;
  const auto t0 = SteadyClock::now();
  probe.start(t0 + 1s, [&](Result r) {
    ++calls;
    got = std::move(r);
    got_at = SteadyClock::now();
  });
  loop.runUntil([&] { return got.has_value(); }, 3s);
  ASSERT_TRUE(got);
  EXPECT_GE(got_at - t0, 990ms);
  EXPECT_LT(got_at - t0, 1500ms);
  EXPECT_EQ(got->reason, Reason::timeout);
  EXPECT_EQ(got->detail.rfind("create of " + hfs.path() + "/.vigie-probe-", 0), 0u) << got->detail;
  // "1s", or a few ms less when start() ran after t0 was taken (a loaded machine).
  EXPECT_TRUE(std::regex_search(
      got->detail, std::regex(" did not return within (1s|9[0-9]{2}ms) \\(hung file system\\?\\)")))
      << got->detail;
  EXPECT_GE(ticks, 12);
  EXPECT_LT(max_gap, 300ms);
  EXPECT_EQ(hfs.blocked(), 1u);
  EXPECT_EQ(loop.pool.busy(), 1u);

  // The server comes back: the stuck job ends, removes its file, and its late
  // result is dropped (done ran once).
  hfs.release();
  EXPECT_TRUE(loop.runUntil([&] { return loop.pool.busy() == 0; }, 2s));
  loop.io.run_for(50ms);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(hfs.files().empty());
  ticker.cancel();
}

TEST(DiskHang, HungWriteNamesTheWriteAndTheFileGoesOnceItReturns) {
  HangFs hfs;
  ASSERT_TRUE(hfs.mounted()) << hfs.error();
  hfs.setMode(HangFs::Mode::hang_data);
  Loop loop;
  DiskSpec spec;
  spec.path = hfs.path();
  std::vector<std::unique_ptr<DiskProbe>> probes;
  std::vector<std::optional<Result>> got(3);
  const auto t0 = SteadyClock::now();
  for (std::size_t i = 0; i < got.size(); ++i) {
    probes.push_back(std::make_unique<DiskProbe>(loop.ctx, spec));
    probes[i]->start(SteadyClock::now() + 300ms, [&got, i](Result r) { got[i] = std::move(r); });
  }
  loop.runUntil([&] { return got[0] && got[1] && got[2]; }, 2s);
  EXPECT_LT(SteadyClock::now() - t0, 500ms);
  for (const auto& r : got) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->reason, Reason::timeout);
    EXPECT_EQ(r->detail.rfind("write of " + hfs.path() + "/.vigie-probe-", 0), 0u) << r->detail;
    EXPECT_TRUE(std::regex_search(
        r->detail, std::regex(" did not return within (29[0-9]ms|300ms) \\(hung file system\\?\\)")))
        << r->detail;
  }
  // Writes to different files are not serialized: all three wait in the server.
  EXPECT_EQ(hfs.blocked(), 3u);
  EXPECT_EQ(loop.pool.busy(), 3u);
  EXPECT_EQ(entries(hfs.path()).size(), 3u);  // created, not yet removed

  hfs.release();
  EXPECT_TRUE(loop.runUntil([&] { return loop.pool.busy() == 0; }, 2s));
  EXPECT_TRUE(entries(hfs.path()).empty());
  EXPECT_TRUE(hfs.files().empty());
}

TEST(DiskHang, RepeatedAttemptsOnAHungMountHoldOneWorkerAndRecover) {
  HangFs hfs;
  ASSERT_TRUE(hfs.mounted()) << hfs.error();
  hfs.setMode(HangFs::Mode::hang_writes);
  Loop loop;
  DiskSpec spec;
  spec.path = hfs.path();
  DiskProbe probe(loop.ctx, spec);
  for (int i = 0; i < 5; ++i) {
    const auto t0 = SteadyClock::now();
    auto r = attempt(loop, probe, 200ms);
    ASSERT_TRUE(r) << i;
    EXPECT_LT(SteadyClock::now() - t0, 450ms) << i;
    EXPECT_EQ(r->reason, Reason::timeout) << i;
    const std::string expected = i == 0 ? "create of " : "the previous attempt's create of ";
    EXPECT_EQ(r->detail.rfind(expected + hfs.path() + "/.vigie-probe-", 0), 0u) << r->detail;
    EXPECT_EQ(loop.pool.busy(), 1u) << i;  // never a second thread for the same path
    EXPECT_EQ(loop.pool.queued(), 0u) << i;
  }
  EXPECT_EQ(hfs.blocked(), 1u);

  // Released during an attempt: it waits for the old job, then runs its own.
  std::optional<Result> got;
  probe.start(SteadyClock::now() + 3s, [&](Result r) { got = std::move(r); });
  loop.io.run_for(50ms);
  EXPECT_FALSE(got);
  hfs.release();
  ASSERT_TRUE(loop.runUntil([&] { return got.has_value(); }, 3s));
  EXPECT_EQ(got->status, Status::ok) << got->detail;
  EXPECT_TRUE(entries(hfs.path()).empty());
  EXPECT_TRUE(hfs.files().empty());
}

TEST(DiskHang, ManyChecksOnAHungMountNeverExceedThePool) {
  HangFs hfs;
  ASSERT_TRUE(hfs.mounted()) << hfs.error();
  hfs.setMode(HangFs::Mode::hang_writes);
  Loop loop(8);
  DiskSpec spec;
  spec.path = hfs.path();
  constexpr int kProbes = 30;
  std::vector<std::unique_ptr<DiskProbe>> probes;
  for (int i = 0; i < kProbes; ++i) probes.push_back(std::make_unique<DiskProbe>(loop.ctx, spec));

  std::size_t max_busy = 0;
  auto round = [&](SteadyClock::duration timeout) {
    std::vector<std::optional<Result>> got(kProbes);
    for (int i = 0; i < kProbes; ++i) {
      probes[i]->start(SteadyClock::now() + timeout,
                       [&got, i](Result r) { got[i] = std::move(r); });
    }
    loop.runUntil(
        [&] {
          max_busy = std::max(max_busy, loop.pool.busy());
          return std::all_of(got.begin(), got.end(), [](const auto& g) { return g.has_value(); });
        },
        timeout + 3s);
    std::map<std::string, int> kinds;  // first words of each timeout detail
    for (const auto& g : got) {
      if (!g) {
        ++kinds["none"];
      } else if (g->status == Status::ok) {
        ++kinds["ok"];
      } else {
        EXPECT_EQ(g->reason, Reason::timeout) << g->detail;
        std::string kind = g->detail.substr(0, g->detail.find(hfs.path()));
        // The wait is named by the time its attempt had left: "499ms" when start()
        // ran a millisecond after the test took the deadline (a sanitizer build on
        // a busy machine), hence the prefix.
        constexpr std::string_view kNoWorker = "no disk worker free within ";
        if (kind.starts_with(kNoWorker)) {
          EXPECT_TRUE(kind.ends_with("ms: 8 of 8 busy (stuck on a hung mount?)")) << kind;
          kind = kNoWorker;
        }
        ++kinds[kind];
      }
    }
    return kinds;
  };
  auto show = [](const std::map<std::string, int>& kinds) {
    std::string s;
    for (const auto& [kind, n] : kinds) s += "\n  " + std::to_string(n) + " x " + kind;
    return s;
  };

  // 8 jobs blocked in create, 16 waiting for a thread, 6 refused at once.
  auto kinds = round(500ms);
  EXPECT_EQ(kinds["create of "], 8) << show(kinds);
  EXPECT_EQ(kinds["no disk worker free within "], 16) << show(kinds);
  EXPECT_EQ(kinds["all 8 disk workers are busy or stuck"], 6) << show(kinds);
  EXPECT_EQ(max_busy, 8u);
  // Only one create reaches the file system: the kernel holds the others on the
  // directory's lock (as NFS does), so all 8 threads are stuck just the same.
  EXPECT_EQ(hfs.blocked(), 1u);

  // Again: nobody takes another thread, the pool stays at 8.
  kinds = round(300ms);
  EXPECT_EQ(kinds["the previous attempt's create of "], 8) << show(kinds);
  EXPECT_EQ(kinds["the previous attempt still waits for a disk worker: 8 of 8 busy (stuck on a "
                  "hung mount?)"],
            16)
      << show(kinds);
  EXPECT_EQ(kinds["all 8 disk workers are busy or stuck"], 6) << show(kinds);
  EXPECT_EQ(max_busy, 8u);

  // The server comes back: the abandoned jobs are skipped, every check passes.
  hfs.release();
  ASSERT_TRUE(loop.runUntil([&] { return loop.pool.busy() + loop.pool.queued() == 0; }, 3s));
  // (One by one: 30 jobs at the same instant are more than the pool's 24 places.)
  for (int i = 0; i < kProbes; ++i) {
    auto r = attempt(loop, *probes[i], 2s);
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->status, Status::ok) << i << ": " << r->detail;
  }
  EXPECT_LE(loop.pool.busy(), 8u);
  EXPECT_TRUE(hfs.files().empty());
}

// ---------------------------------------------------------------------------
// Through the engine: one check on the hung mount, one on a healthy directory.

double gaugeValue(prometheus::Registry& registry, const std::string& name, const std::string& label,
                  const std::string& value) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      for (const auto& l : m.label) {
        if (l.name == label && l.value == value) return m.gauge.value;
      }
    }
  }
  return -1;
}

TEST(DiskHang, EngineKeepsOtherChecksOnScheduleReportsStuckWorkersAndRecovers) {
  HangFs hfs;
  ASSERT_TRUE(hfs.mounted()) << hfs.error();
  TempDir healthy;
  hfs.setMode(HangFs::Mode::hang_writes);

  const std::string yaml = fmt::format(R"(
services:
  - name: nfs
    checks:
      - name: data
        interval: 500ms
        timeout: 400ms
        failure_threshold: 1
        disk:
          path: {}
  - name: local
    checks:
      - name: scratch
        interval: 200ms
        timeout: 200ms
        failure_threshold: 1
        disk:
          path: {}
          min_free: 1%
)",
                                       hfs.path(), healthy.path());
  auto config = parseConfig(yaml, "disk_hang.yaml");

  boost::asio::io_context io;
  auto registry = std::make_shared<prometheus::Registry>();
  Engine engine(io, registry);
  struct Seen {
    SteadyClock::time_point at;
    Result result;
    CheckState state;
  };
  std::map<std::string, std::vector<Seen>> seen;
  engine.on_result = [&](const CheckStatus& s) {
    seen[s.check->key].push_back({SteadyClock::now(), *s.last, s.state});
  };
  engine.apply(config);

  // Hung until the stuck gauge shows the one blocked worker (10 s threshold).
  const auto t0 = SteadyClock::now();
  double stuck = 0;
  std::size_t max_busy = 0;
  std::size_t max_stuck_1s = 0;
  while (SteadyClock::now() - t0 < 13s) {
    io.run_for(100ms);
    max_busy = std::max(max_busy, engine.probeContext().blocking->busy());
    max_stuck_1s = std::max(max_stuck_1s, engine.probeContext().blocking->stuck(1s));
    engine.snapshot();  // refreshes the gauge, as a scrape does
    stuck = gaugeValue(*registry, "vigie_blocking_workers_stuck", "pool", "disk");
    if (stuck > 0) break;
  }
  const auto hung_for = SteadyClock::now() - t0;
  EXPECT_EQ(stuck, 1.0);
  EXPECT_GE(hung_for, 10s);
  // The hung check holds one worker for good; the healthy one borrows another briefly.
  EXPECT_EQ(max_stuck_1s, 1u);
  EXPECT_LE(max_busy, 2u);

  const auto& nfs = seen["nfs/data"];
  const auto& local = seen["local/scratch"];
  const double secs = std::chrono::duration<double>(hung_for).count();
  // ~1 result per interval for each; every healthy one ok, every hung one a timeout.
  EXPECT_GE(static_cast<double>(local.size()), secs / 0.2 * 0.85) << local.size();
  EXPECT_GE(static_cast<double>(nfs.size()), secs / 0.5 * 0.85) << nfs.size();
  SteadyClock::duration max_gap{};
  for (std::size_t i = 0; i < local.size(); ++i) {
    EXPECT_EQ(local[i].result.status, Status::ok) << local[i].result.detail;
    if (i > 0) max_gap = std::max(max_gap, local[i].at - local[i - 1].at);
  }
  // A loop stall under TSan on a loaded machine is TSan's, not a blocked loop's.
  EXPECT_LT(max_gap, 400ms * test::kTimingSlack);
  for (std::size_t i = 0; i < nfs.size(); ++i) {
    EXPECT_EQ(nfs[i].result.reason, Reason::timeout) << nfs[i].result.detail;
    EXPECT_EQ(nfs[i].state, CheckState::down);
    // The probe's own timeout (at the deadline), not the engine's fallback.
    EXPECT_EQ(nfs[i].result.detail.find("no result within"), std::string::npos)
        << nfs[i].result.detail;
    EXPECT_NEAR(nfs[i].result.duration, 0.4, 0.1 * test::kTimingSlack) << nfs[i].result.detail;
  }
  ASSERT_FALSE(nfs.empty());
  // The engine's slot plus the timeout: "400ms", or less when it started late.
  EXPECT_TRUE(std::regex_search(nfs.front().result.detail,
                                std::regex("did not return within (400|3[0-9]{2})ms")))
      << nfs.front().result.detail;
  EXPECT_EQ(nfs.back().result.detail.rfind("the previous attempt's create of", 0), 0u)
      << nfs.back().result.detail;

  // The NFS server comes back: the check is up again at its next turn.
  hfs.release();
  const auto released = SteadyClock::now();
  while (SteadyClock::now() - released < 3s && seen["nfs/data"].back().state != CheckState::up) {
    io.run_for(50ms);
  }
  EXPECT_EQ(seen["nfs/data"].back().state, CheckState::up) << seen["nfs/data"].back().result.detail;
  engine.snapshot();
  EXPECT_EQ(gaugeValue(*registry, "vigie_blocking_workers_stuck", "pool", "disk"), 0.0);
  EXPECT_TRUE(hfs.files().empty());
  engine.stop();
}

}  // namespace
}  // namespace vigie
