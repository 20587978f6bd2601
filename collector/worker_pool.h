#pragma once
/// \file
/// A small bounded pool of threads for blocking work that has no non-blocking API
/// (disk I/O, libpqxx). A job runs on a pool thread and posts its own result back to
/// the loop (boost::asio::post(pool.loop(), ...)), holding only a weak reference to
/// whoever waits for it: the pool never calls back on its own.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

namespace vigie {

/// Threads are started on demand, never more than `max_threads`. A job that never
/// returns (a hung NFS mount) keeps its thread for good: the pool does not grow to
/// replace it, so a stuck target can cost at most `max_threads` threads. Beyond the
/// jobs running, at most 2 * max_threads wait; submit() refuses more.
///
/// Threading: every method may be called from any thread. Jobs must not throw (an
/// exception escaping a job is caught and dropped, so the thread survives).
class WorkerPool {
 public:
  /// `loop` must outlive every job that posts to it; `name` appears in thread names
  /// (cut to 15 characters by the kernel) and logs.
  WorkerPool(boost::asio::io_context& loop, std::size_t max_threads, std::string name);
  /// shutdown().
  ~WorkerPool();

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  /// Queues `job`. False (and `job` dropped) when the pool is shut down, or when
  /// running + waiting jobs already number 3 * max_threads (every thread busy or
  /// stuck and 2 * max_threads waiting).
  bool submit(std::function<void()> job);

  /// Threads currently running a job.
  std::size_t busy() const;
  /// Threads running the same job for longer than `older_than`.
  std::size_t stuck(std::chrono::steady_clock::duration older_than) const;
  /// Jobs waiting for a thread.
  std::size_t queued() const;
  std::size_t maxThreads() const { return max_threads_; }
  const std::string& name() const { return name_; }
  boost::asio::io_context& loop() { return loop_; }

  /// Drops queued jobs, lets running jobs finish for at most `grace`, joins the threads
  /// that ended and detaches the ones still inside a job (they end with the process).
  /// Idempotent; submit() fails afterwards.
  void shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(500));

 private:
  struct State;
  boost::asio::io_context& loop_;
  std::size_t max_threads_;
  std::string name_;
  // Shared with the threads, so a detached thread never touches a destroyed pool.
  std::shared_ptr<State> state_;
};

}  // namespace vigie
