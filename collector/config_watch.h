#pragma once
/// \file
/// Notices when the configuration file changes under its path, as a Kubernetes
/// ConfigMap volume does it: the file is a symlink through `..data`, which the
/// kubelet swaps atomically to a new timestamped directory. The path stays; the
/// resolved file changes. Polls (stat is cheap and works on every filesystem,
/// inotify does not follow symlink swaps reliably) on the loop's timer.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace vigie {

/// What identifies one version of a file: where its symlinks lead, its inode,
/// size and modification time. `exists` false when it cannot be stat'ed.
struct FileIdentity {
  bool exists = false;
  std::string resolved;
  unsigned long long device = 0, inode = 0, size = 0;
  long long mtime_ns = 0;
  bool operator==(const FileIdentity&) const = default;
};

/// Reads the identity of `path` now (follows symlinks).
FileIdentity fileIdentity(const std::string& path);

/// Calls `changed` on the loop when the identity of `path` differs from the
/// one seen at start() (or at the previous call), once per change. A file that
/// disappears is not a change; one that comes back different is. Loop thread only.
class ConfigWatcher {
 public:
  ConfigWatcher(boost::asio::io_context& io, std::string path,
                std::chrono::milliseconds interval, std::function<void()> changed);
  ~ConfigWatcher();
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

  void start();
  void stop();

 private:
  void arm();

  boost::asio::steady_timer timer_;
  std::string path_;
  std::chrono::milliseconds interval_;
  std::function<void()> changed_;
  FileIdentity seen_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vigie
