#include "collector/worker_pool.h"

#include <pthread.h>

#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace vigie {

struct WorkerPool::State {
  struct Worker {
    std::thread thread;
    bool busy = false;
    bool exited = false;
    std::chrono::steady_clock::time_point since{};
  };

  mutable std::mutex mu;
  std::condition_variable work_cv;
  std::condition_variable exit_cv;
  std::deque<std::function<void()>> queue;
  std::list<Worker> workers;  // a list: a thread keeps a pointer to its own entry
  std::size_t idle = 0;
  std::size_t running = 0;  // threads inside a job
  bool stopping = false;
  std::string name;

  void run(Worker* self) {
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    std::unique_lock lock(mu);
    for (;;) {
      while (queue.empty() && !stopping) {
        ++idle;
        work_cv.wait(lock);
        --idle;
      }
      if (stopping) break;
      auto job = std::move(queue.front());
      queue.pop_front();
      self->busy = true;
      ++running;
      self->since = std::chrono::steady_clock::now();
      lock.unlock();
      try {
        job();
      } catch (...) {
        // A job reports its own failures; one that throws must not kill the thread.
      }
      // Destroy the job's captures before taking the lock: they may be heavy.
      job = nullptr;
      lock.lock();
      self->busy = false;
      --running;
    }
    self->exited = true;
    exit_cv.notify_all();
  }
};

WorkerPool::WorkerPool(boost::asio::io_context& loop, std::size_t max_threads, std::string name)
    : loop_(loop),
      max_threads_(max_threads == 0 ? 1 : max_threads),
      name_(std::move(name)),
      state_(std::make_shared<State>()) {
  state_->name = name_;
}

WorkerPool::~WorkerPool() { shutdown(); }

bool WorkerPool::submit(std::function<void()> job) {
  std::lock_guard lock(state_->mu);
  if (state_->stopping) return false;
  // Jobs not yet picked up by a free thread count as waiting.
  if (state_->running + state_->queue.size() >= 3 * max_threads_) return false;
  state_->queue.push_back(std::move(job));
  if (state_->queue.size() > state_->idle && state_->workers.size() < max_threads_) {
    auto& w = state_->workers.emplace_back();
    // The thread owns a reference to the state: it may outlive the pool when detached.
    w.thread = std::thread([st = state_, self = &w] { st->run(self); });
  } else {
    state_->work_cv.notify_one();
  }
  return true;
}

std::size_t WorkerPool::busy() const {
  std::lock_guard lock(state_->mu);
  return state_->running;
}

std::size_t WorkerPool::stuck(std::chrono::steady_clock::duration older_than) const {
  const auto limit = std::chrono::steady_clock::now() - older_than;
  std::lock_guard lock(state_->mu);
  std::size_t n = 0;
  for (const auto& w : state_->workers) n += (w.busy && w.since < limit) ? 1 : 0;
  return n;
}

std::size_t WorkerPool::queued() const {
  std::lock_guard lock(state_->mu);
  return state_->queue.size();
}

void WorkerPool::shutdown(std::chrono::milliseconds grace) {
  std::deque<std::function<void()>> dropped;
  std::vector<std::pair<std::thread, bool>> threads;  // thread, ended
  {
    std::unique_lock lock(state_->mu);
    if (state_->stopping) return;
    state_->stopping = true;
    dropped.swap(state_->queue);
    state_->work_cv.notify_all();
    auto all_exited = [&] {
      for (const auto& w : state_->workers) {
        if (!w.exited) return false;
      }
      return true;
    };
    state_->exit_cv.wait_for(lock, grace, all_exited);
    for (auto& w : state_->workers) threads.emplace_back(std::move(w.thread), w.exited);
    // Entries stay in the list: a detached thread still writes to its own entry.
  }
  for (auto& [t, ended] : threads) {
    if (!t.joinable()) continue;
    // A thread stuck in a job (hung NFS) is never joined: vigie must be able to exit.
    if (ended) {
      t.join();
    } else {
      t.detach();
    }
  }
}

}  // namespace vigie
