#pragma once
/// \file
/// Hermetic name resolution and loopback network for a test process: its own mount
/// and network namespaces, with /etc/hosts and /etc/resolv.conf of the test's choosing.

#include <string>

namespace vigie::test {

/// Moves the calling process into new mount and network namespaces
/// (unshare(CLONE_NEWNS | CLONE_NEWNET)), brings the new namespace's loopback up
/// (127.0.0.0/8 and ::1, nothing else: no packet can leave the machine, and every
/// port, 80 included, is free), and bind-mounts over
///  - /etc/hosts: `hosts_content`, as given (add "127.0.0.1 localhost" yourself);
///  - /etc/resolv.conf: "nameserver 127.0.0.1" (nothing listens there, so a name not
///    in the hosts file fails at once with a resolver error);
///  - /etc/nsswitch.conf: the system's, with its hosts line "hosts: files dns".
/// Child processes (nginx) inherit all of it; the rest of the machine sees nothing.
///
/// Needs CAP_SYS_ADMIN (the tests run as root) and a single-threaded process:
/// unshare(CLONE_NEWNS) fails with EINVAL once a second thread exists, so call it
/// first thing in main(), before GoogleTest or anything else starts a thread, and
/// before any name lookup (glibc reads these files once). Throws
/// std::runtime_error naming the step that failed.
void isolateNameResolution(const std::string& hosts_content);

}  // namespace vigie::test
