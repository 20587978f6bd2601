#pragma once
/// \file
/// The process's file-descriptor budget. Every probe needs at least one descriptor
/// (a socket), and so does every HTTP client of vigie: under a low `ulimit -n`
/// (1024 is a common default) thousands of hung targets would otherwise take them
/// all, and vigie's own lack of descriptors would be reported as the targets'
/// failure. See Engine for how probes are held back, README "Limits".

#include <cerrno>
#include <cstddef>

namespace vigie {

/// Raises the soft RLIMIT_NOFILE to the hard limit (as Go programs and nginx's
/// worker_rlimit_nofile do) and returns the soft limit in effect afterwards.
/// Call once at start-up, before other threads exist.
std::size_t raiseFdLimit();

/// The soft RLIMIT_NOFILE now (a very large value when unlimited).
std::size_t fdLimit();

/// Descriptors open in this process now (entries of /proc/self/fd); 0 when unknown.
/// Costs one directory read: call it from a timer, not per probe.
std::size_t openFds();

/// How many probes may run at once under a descriptor limit: the limit minus a
/// reserve for vigie's own HTTP clients (fdLimit()/4, see httpConnectionsFor) and
/// 64 more (listeners, logs, the history database, resolver, worker threads).
std::size_t probeSlotsFor(std::size_t fd_limit);

/// The share of the descriptor limit kept for vigie's HTTP server connections.
std::size_t httpConnectionsFor(std::size_t fd_limit);

/// True for the errno values that mean "no descriptor left" (EMFILE: this process,
/// ENFILE: the whole system).
inline bool isOutOfDescriptors(int err) { return err == EMFILE || err == ENFILE; }

}  // namespace vigie
