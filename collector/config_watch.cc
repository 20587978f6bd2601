#include "collector/config_watch.h"

#include <sys/stat.h>

#include <climits>
#include <cstdlib>

namespace vigie {

FileIdentity fileIdentity(const std::string& path) {
  FileIdentity id;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return id;
  id.exists = true;
  id.device = static_cast<unsigned long long>(st.st_dev);
  id.inode = static_cast<unsigned long long>(st.st_ino);
  id.size = static_cast<unsigned long long>(st.st_size);
  id.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1'000'000'000LL + st.st_mtim.tv_nsec;
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) != nullptr) id.resolved = buf;
  return id;
}

ConfigWatcher::ConfigWatcher(boost::asio::io_context& io, std::string path,
                             std::chrono::milliseconds interval, std::function<void()> changed)
    : timer_(io), path_(std::move(path)), interval_(interval), changed_(std::move(changed)) {}

ConfigWatcher::~ConfigWatcher() {
  *alive_ = false;
  timer_.cancel();
}

void ConfigWatcher::start() {
  seen_ = fileIdentity(path_);
  arm();
}

void ConfigWatcher::stop() {
  *alive_ = false;
  timer_.cancel();
}

void ConfigWatcher::arm() {
  timer_.expires_after(interval_);
  timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    const FileIdentity now = fileIdentity(path_);
    // A file caught between unlink and rename is not a change yet.
    if (now.exists && now != seen_) {
      seen_ = now;
      changed_();
      if (!*alive) return;
    }
    arm();
  });
}

}  // namespace vigie
