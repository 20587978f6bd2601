#pragma once
/// \file
/// Free loopback ports for servers started by tests.

namespace vigie::test {

/// A TCP port that was free on 127.0.0.1 a moment ago (bound to port 0, then
/// released). Another process may take it before the caller binds it; tests that
/// can bind port 0 themselves should. Throws std::runtime_error if no socket can be had.
int freePort();

/// Whether something accepts TCP connections on 127.0.0.1:`port` right now.
bool portAccepts(int port);

}  // namespace vigie::test
