#include "collector/fd_limit.h"

#include <dirent.h>
#include <sys/resource.h>

#include <algorithm>
#include <limits>

namespace vigie {

std::size_t raiseFdLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
      // Some systems refuse RLIM_INFINITY as a soft limit: stop at a large number.
      raised.rlim_cur = std::min<rlim_t>(rl.rlim_max, 1 << 20);
      setrlimit(RLIMIT_NOFILE, &raised);
    }
  }
  return fdLimit();
}

std::size_t fdLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) {
    return std::numeric_limits<std::size_t>::max() / 4;
  }
  return static_cast<std::size_t>(rl.rlim_cur);
}

std::size_t openFds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  std::size_t n = 0;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n > 0 ? n - 1 : 0;  // the directory's own descriptor
}

std::size_t httpConnectionsFor(std::size_t fd_limit) { return std::max<std::size_t>(fd_limit / 4, 8); }

std::size_t probeSlotsFor(std::size_t fd_limit) {
  const std::size_t reserve = 64 + httpConnectionsFor(fd_limit);
  if (fd_limit <= reserve + 16) return std::max<std::size_t>(fd_limit / 4, 1);
  return fd_limit - reserve;
}

}  // namespace vigie
