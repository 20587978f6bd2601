#pragma once
/// \file
/// A tiny in-memory FUSE file system mounted by a test in its own process: files
/// work normally, or writes hang (as on a hard NFS mount whose server is gone), or
/// reads lie. For the disk probe's hung-mount, timeout and verify tests.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace vigie::test {

/// Mounts on a fresh temp dir (requires root or CAP_SYS_ADMIN and /dev/fuse) and
/// serves it on its own threads (libfuse's multi-threaded loop, up to 64 threads),
/// so the test's own threads may use the files freely.
///
/// One flat directory of regular files kept in memory; statfs reports 1 GiB with
/// 90% free and 1,000,000 inodes. Kernel caches are off (direct I/O, zero entry and
/// attribute timeouts) so every read and write reaches the handlers below.
///
/// Never leaves a mount behind: the destructor wakes every blocked operation,
/// detaches the mount, aborts the FUSE connection (so callers still inside a
/// system call on it get ENOTCONN instead of hanging), joins the serving threads
/// and removes the directory.
///
/// Threading: every method may be called from any thread.
class HangFs {
 public:
  enum class Mode {
    normal,         ///< files behave
    hang_writes,    ///< create, write and fsync block until the mode changes or unmount
    hang_data,      ///< as hang_writes, but create works: write and fsync block
    corrupt_reads,  ///< read returns the stored bytes with the first byte flipped
  };

  /// Mounts; check mounted() (and error() for why not) before use.
  HangFs();
  ~HangFs();
  HangFs(const HangFs&) = delete;
  HangFs& operator=(const HangFs&) = delete;

  bool mounted() const;
  /// Why mounting failed; empty when mounted.
  const std::string& error() const;
  /// The mount point, e.g. "/tmp/vigie-hangfs-Ab12Cd".
  const std::string& path() const;

  /// Switches at once. Leaving a hang mode releases the operations blocked in it
  /// (unless the new mode blocks them too): they go on as in the new mode.
  void setMode(Mode mode);
  Mode mode() const;
  /// setMode(Mode::normal).
  void release();

  /// Operations blocked by a hang mode right now (kernel requests left pending).
  std::size_t blocked() const;
  /// Waits until at least `n` operations are blocked; false after `timeout`.
  bool waitBlocked(std::size_t n, std::chrono::milliseconds timeout) const;
  /// Names of the files in the root directory, read from memory (not through the
  /// kernel), sorted.
  std::vector<std::string> files() const;

  /// The shared state served by the FUSE threads (defined in hang_fs.cc).
  struct State;

 private:
  void unmount();

  std::unique_ptr<State> state_;
};

}  // namespace vigie::test
