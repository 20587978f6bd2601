#pragma once
/// \file
/// A child process for tests (nginx, the vigie binary): spawned with chosen args and
/// environment, output captured to a file, stopped in the destructor.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace vigie::test {

/// RAII child process. Not copyable; movable is not needed by tests, so not provided.
/// Thread: use from one thread.
class Process {
 public:
  struct Options {
    std::vector<std::string> args;           // args[0] is the executable path (no PATH search)
    std::map<std::string, std::string> env;  // added to (or replacing in) the parent's environment
    std::string output_file;                 // stdout+stderr go here; empty: /dev/null
    std::string cwd;                         // empty: the parent's
  };

  /// Spawns the child. Throws std::runtime_error when it cannot be started.
  explicit Process(Options options);
  /// stop() with the default grace.
  ~Process();

  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }

  /// True while the child has not exited (reaps it when it has).
  bool running();

  /// SIGTERM, wait up to `grace`, then SIGKILL. Returns the wait status (as waitpid),
  /// or the one already collected. Idempotent.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

  /// Waits for the child to exit by itself, up to `timeout`; nullopt if it did not.
  std::optional<int> wait(std::chrono::milliseconds timeout);

  /// Everything the child wrote so far (the output file's content).
  std::string output() const;

 private:
  Options options_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

/// The content of a file ("" if it cannot be read).
std::string readFile(const std::string& path);
/// Writes (replaces) a file, creating parent directories. Throws std::runtime_error.
void writeFile(const std::string& path, const std::string& content);
/// A fresh directory under $TMPDIR (or /tmp) named vigie-<tag>-XXXXXX.
std::string makeTempDir(const std::string& tag);
/// Removes a directory tree, ignoring errors.
void removeTree(const std::string& path);

}  // namespace vigie::test
