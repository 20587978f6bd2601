#include "tests/support/netns.h"

#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace vigie::test {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("isolateNameResolution: " + what + ": " + std::strerror(errno));
}

void writeAll(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) fail("cannot write " + path);
}

void bindOver(const std::string& source, const char* target) {
  if (::mount(source.c_str(), target, nullptr, MS_BIND, nullptr) != 0) {
    fail(std::string("bind-mount over ") + target);
  }
}

void loopbackUp() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  if (ok) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    ok = ::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  }
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (!ok) fail("bring lo up");
}

std::string nsswitchWithPlainHosts() {
  std::ifstream in("/etc/nsswitch.conf");
  std::string out;
  bool had_hosts = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("hosts:", 0) == 0) {
      // "myhostname", "mdns", "resolve" would answer names the test did not list.
      line = "hosts: files dns";
      had_hosts = true;
    }
    out += line + "\n";
  }
  if (!had_hosts) out += "hosts: files dns\n";
  return out;
}

}  // namespace

void isolateNameResolution(const std::string& hosts_content) {
  if (::unshare(CLONE_NEWNS | CLONE_NEWNET) != 0) fail("unshare(CLONE_NEWNS | CLONE_NEWNET)");
  // Without this, the bind mounts below would propagate back to the host's namespace
  // on systems where / is a shared mount (systemd's default).
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) fail("make / private");
  loopbackUp();

  char dir_template[] = "/tmp/vigie-netns-XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) fail("mkdtemp");
  const std::string dir = dir_template;
  const std::string hosts = dir + "/hosts";
  const std::string resolv = dir + "/resolv.conf";
  const std::string nsswitch = dir + "/nsswitch.conf";
  writeAll(hosts, hosts_content);
  writeAll(resolv, "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n");
  writeAll(nsswitch, nsswitchWithPlainHosts());
  bindOver(hosts, "/etc/hosts");
  bindOver(resolv, "/etc/resolv.conf");
  bindOver(nsswitch, "/etc/nsswitch.conf");
  // The mounts keep the files' inodes alive: the names can go now, so nothing is
  // left behind in /tmp whatever way the test ends.
  ::unlink(hosts.c_str());
  ::unlink(resolv.c_str());
  ::unlink(nsswitch.c_str());
  ::rmdir(dir.c_str());
}

}  // namespace vigie::test
