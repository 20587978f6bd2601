// HAProxy agent-check: the line for each cluster state, the responder on loopback
// (many connections at once, timeouts, the connection bound, start and reload),
// and a real HAProxy 2.6 following the vigie binary's answers through its stats
// socket: UP, a reduced weight, DOWN with vigie's reason, DRAIN, UP again.

#include "exporters/haproxy_agent.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <ctime>
#include <functional>
#include <future>
#include <map>
#include <sstream>
#include <thread>

#include "tests/support/nginx.h"
#include "tests/support/ports.h"
#include "tests/support/process.h"
#include "tests/support/paths.h"

namespace vigie {
namespace {

using namespace std::chrono_literals;
using test::freePort;
using test::portAccepts;

ClusterStatus clusterStatus(const std::string& name, ServiceState state, std::string reason) {
  auto cfg = std::make_shared<ClusterConfig>();
  cfg->name = name;
  ClusterStatus cs;
  cs.cluster = cfg;
  cs.state = state;
  cs.ready = state == ServiceState::up || state == ServiceState::degraded;
  cs.reason = std::move(reason);
  return cs;
}

TEST(AgentLine, OneLinePerClusterState) {
  struct Case {
    ServiceState state;
    std::string reason;
    std::string line;
  };
  const std::vector<Case> cases = {
      {ServiceState::up, "", "up ready 100%\n"},
      {ServiceState::degraded, "web: degraded (extra http_status: got 404)", "up ready 50%\n"},
      {ServiceState::maintenance, "web: maintenance (upgrade)", "drain\n"},
      {ServiceState::down, "web: down (health http_status: got 404)",
       "down #web: down (health http_status: got 404)\n"},
      {ServiceState::down, "", "down #cluster blue is down\n"},
      {ServiceState::down, "a\r\nb\tc\x01\177d\n", "down #a b c d\n"},
      {ServiceState::unknown, "web: unknown", "\n"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(haproxyAgentLine(clusterStatus("blue", c.state, c.reason)), c.line)
        << serviceStateName(c.state) << " / " << c.reason;
  }
}

TEST(AgentLine, DescriptionIsOneBoundedAsciiLine) {
  struct Case {
    std::string in;
    std::string out;
  };
  const std::vector<Case> cases = {
      {"plain", "plain"},
      {"  lead and trail  ", "lead and trail"},
      {"two\r\nlines\n", "two lines"},
      {"tab\tand\x1b[31mescape", "tab and [31mescape"},
      {"caf\xc3\xa9", "caf??"},
      {"keeps # and , as text", "keeps # and , as text"},
      {"", ""},
      {std::string(300, 'x'), std::string(kAgentDescriptionMax - 3, 'x') + "..."},
      {std::string(kAgentDescriptionMax, 'y'), std::string(kAgentDescriptionMax, 'y')},
  };
  for (const Case& c : cases) EXPECT_EQ(agentDescription(c.in), c.out) << c.in;
  const std::string line = haproxyAgentLine(
      clusterStatus("blue", ServiceState::down, std::string(1000, 'z') + "\nsecond line"));
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  EXPECT_LE(line.size(), std::string("down #\n").size() + kAgentDescriptionMax);
}

// The io_context on its own thread, as vigie's loop; run() executes on it and waits.
class Loop {
 public:
  Loop() : guard_(io_.get_executor()), thread_([this] { io_.run(); }) {}
  ~Loop() {
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  template <typename F>
  auto run(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    boost::asio::post(io_, [&task] { task(); });
    return result.get();
  }
  boost::asio::io_context& io() { return io_; }

 private:
  boost::asio::io_context io_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;
};

int connectTo(int port, std::chrono::milliseconds recv_timeout = 3s) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(recv_timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((recv_timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads until EOF (or the receive timeout); "ERR" if nothing could be read.
std::string readAll(int fd) {
  std::string out;
  char buf[512];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) return out.empty() ? "ERR" : out;
    if (n == 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

std::string fetch(int port) {
  const int fd = connectTo(port);
  if (fd < 0) return "CONNECT FAILED";
  std::string out = readAll(fd);
  ::close(fd);
  return out;
}

bool eventually(std::chrono::milliseconds limit, const std::function<bool()>& pred) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

// A config naming clusters (name -> agent_listen) and a snapshot giving them states.
struct Fixture {
  std::shared_ptr<Config> config = std::make_shared<Config>();
  std::shared_ptr<const Snapshot> snapshot;

  void cluster(const std::string& name, const std::string& listen) {
    ClusterConfig c;
    c.name = name;
    c.agent_listen = listen;
    config->clusters.push_back(c);
  }
  // Each cluster's state, in config order.
  std::shared_ptr<const Snapshot> states(const std::map<std::string, ServiceState>& by_name) {
    auto snap = std::make_shared<Snapshot>();
    snap->config = config;
    for (const ClusterConfig& c : config->clusters) {
      ClusterStatus cs;
      cs.cluster = std::shared_ptr<const ClusterConfig>(config, &c);
      auto it = by_name.find(c.name);
      cs.state = it == by_name.end() ? ServiceState::unknown : it->second;
      cs.reason = c.name + ": down (health timeout: no answer in 5s)";
      snap->clusters.push_back(std::move(cs));
    }
    return snap;
  }
};

class AgentResponder : public ::testing::Test {
 protected:
  void make(HaproxyAgentOptions options = {}) {
    agents_ = loop_.run([&] {
      return std::make_shared<HaproxyAgents>(
          loop_.io(), [this] { return snapshot_; }, options);
    });
  }
  void TearDown() override {
    loop_.run([&] {
      agents_.reset();
      return 0;
    });
  }
  void setSnapshot(std::shared_ptr<const Snapshot> s) {
    loop_.run([&] {
      snapshot_ = std::move(s);
      return 0;
    });
  }
  int port(const std::string& cluster) {
    return loop_.run([&] { return static_cast<int>(agents_->port(cluster)); });
  }
  HaproxyAgentStats stats() {
    return loop_.run([&] { return agents_->stats(); });
  }

  Loop loop_;
  std::shared_ptr<const Snapshot> snapshot_;  // loop thread only
  std::shared_ptr<HaproxyAgents> agents_;
};

TEST_F(AgentResponder, AnswersEachClusterItsLineAndCloses) {
  Fixture f;
  f.cluster("blue", "127.0.0.1:0");
  f.cluster("green", "127.0.0.1:0");
  f.cluster("nothing-yet", "127.0.0.1:0");
  f.cluster("no-agent", "");
  make();
  loop_.run([&] {
    agents_->start(*f.config);
    return 0;
  });
  setSnapshot(f.states({{"blue", ServiceState::up}, {"green", ServiceState::down}}));
  ASSERT_NE(port("blue"), 0);
  ASSERT_NE(port("green"), 0);
  EXPECT_EQ(port("no-agent"), 0);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(fetch(port("blue")), "up ready 100%\n");
  EXPECT_EQ(fetch(port("green")), "down #green: down (health timeout: no answer in 5s)\n");
  EXPECT_EQ(fetch(port("nothing-yet")), "\n");
  // Each answer ends with the server closing: well under the 2 s timeout.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);

  // The line follows the current snapshot; no snapshot at all is unknown.
  setSnapshot(f.states({{"blue", ServiceState::maintenance}}));
  EXPECT_EQ(fetch(port("blue")), "drain\n");
  setSnapshot(nullptr);
  EXPECT_EQ(fetch(port("blue")), "\n");
}

TEST_F(AgentResponder, ManyConnectionsAtOnceAllAnswerQuickly) {
  Fixture f;
  f.cluster("blue", "127.0.0.1:0");
  make();
  loop_.run([&] {
    agents_->start(*f.config);
    return 0;
  });
  setSnapshot(f.states({{"blue", ServiceState::degraded}}));
  const int p = port("blue");
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::future<std::string>> answers;
  for (int i = 0; i < 100; ++i) answers.push_back(std::async(std::launch::async, fetch, p));
  for (auto& a : answers) EXPECT_EQ(a.get(), "up ready 50%\n");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_TRUE(eventually(2s, [&] { return stats().connections_open == 0; }));
  EXPECT_EQ(stats().connections_total, 100u);
  EXPECT_EQ(stats().timeouts, 0u);
}

TEST_F(AgentResponder, AClientThatNeverClosesIsClosedAfterTheTimeout) {
  Fixture f;
  f.cluster("blue", "127.0.0.1:0");
  make({.max_connections = 256, .connection_timeout = 300ms});
  loop_.run([&] {
    agents_->start(*f.config);
    return 0;
  });
  setSnapshot(f.states({{"blue", ServiceState::up}}));
  const int fd = connectTo(port("blue"));
  ASSERT_GE(fd, 0);
  EXPECT_EQ(readAll(fd), "up ready 100%\n");  // half-closed by vigie after the line
  EXPECT_EQ(stats().connections_open, 1u);    // still waiting for our side
  EXPECT_TRUE(eventually(2s, [&] { return stats().connections_open == 0; }));
  EXPECT_EQ(stats().timeouts, 1u);
  ::close(fd);
}

TEST_F(AgentResponder, OpenConnectionsAreBounded) {
  Fixture f;
  f.cluster("blue", "127.0.0.1:0");
  make({.max_connections = 2, .connection_timeout = 500ms});
  loop_.run([&] {
    agents_->start(*f.config);
    return 0;
  });
  setSnapshot(f.states({{"blue", ServiceState::up}}));
  const int p = port("blue");
  const int a = connectTo(p), b = connectTo(p);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_EQ(readAll(a), "up ready 100%\n");
  EXPECT_EQ(readAll(b), "up ready 100%\n");
  // Both slots are held (neither client closes): the third waits in the backlog
  // until a timeout frees one.
  const auto t0 = std::chrono::steady_clock::now();
  const int c = connectTo(p);
  ASSERT_GE(c, 0);
  EXPECT_EQ(readAll(c), "up ready 100%\n");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 300ms);
  EXPECT_GE(stats().accept_pauses, 1u);
  ::close(a);
  ::close(b);
  ::close(c);
}

TEST_F(AgentResponder, StartIsAllOrNothing) {
  boost::asio::io_context other;
  boost::asio::ip::tcp::acceptor taken(other, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const int taken_port = taken.local_endpoint().port();
  const int free_port = freePort();
  Fixture f;
  f.cluster("blue", fmt::format("127.0.0.1:{}", free_port));
  f.cluster("green", fmt::format("127.0.0.1:{}", taken_port));
  make();
  const std::string error = loop_.run([&]() -> std::string {
    try {
      agents_->start(*f.config);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  });
  EXPECT_NE(error.find("cluster green: cannot listen on 127.0.0.1:" + std::to_string(taken_port)),
            std::string::npos)
      << error;
  EXPECT_FALSE(portAccepts(free_port));
  EXPECT_EQ(port("blue"), 0);

  Fixture bad;
  bad.cluster("blue", "localhost:9878");
  const std::string bad_error = loop_.run([&]() -> std::string {
    try {
      agents_->start(*bad.config);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  });
  EXPECT_NE(bad_error.find("literal"), std::string::npos) << bad_error;
}

TEST_F(AgentResponder, ReloadKeepsRepointsMovesAndFallsBack) {
  const int p1 = freePort();
  Fixture f1;
  f1.cluster("blue", fmt::format("127.0.0.1:{}", p1));
  make();
  loop_.run([&] {
    agents_->start(*f1.config);
    return 0;
  });
  setSnapshot(f1.states({{"blue", ServiceState::up}}));
  ASSERT_EQ(fetch(p1), "up ready 100%\n");

  // Same address, the cluster renamed: the listener stays and answers for green.
  Fixture f2;
  f2.cluster("green", fmt::format("127.0.0.1:{}", p1));
  auto problems = loop_.run([&] { return agents_->reload(*f2.config); });
  EXPECT_TRUE(problems.empty());
  setSnapshot(f2.states({{"green", ServiceState::maintenance}}));
  EXPECT_EQ(port("green"), p1);
  EXPECT_EQ(port("blue"), 0);
  EXPECT_EQ(fetch(p1), "drain\n");

  // A new address: opened, and the old one closed.
  const int p2 = freePort();
  Fixture f3;
  f3.cluster("green", fmt::format("127.0.0.1:{}", p2));
  problems = loop_.run([&] { return agents_->reload(*f3.config); });
  EXPECT_TRUE(problems.empty());
  setSnapshot(f3.states({{"green", ServiceState::up}}));
  EXPECT_EQ(fetch(p2), "up ready 100%\n");
  EXPECT_FALSE(portAccepts(p1));

  // An address that cannot be bound: reported, and green keeps answering on p2.
  boost::asio::io_context other;
  boost::asio::ip::tcp::acceptor taken(other, {boost::asio::ip::make_address("127.0.0.1"), 0});
  Fixture f4;
  f4.cluster("green", fmt::format("127.0.0.1:{}", taken.local_endpoint().port()));
  problems = loop_.run([&] { return agents_->reload(*f4.config); });
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("cluster green: cannot listen on"), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find(fmt::format("keeps answering on 127.0.0.1:{}", p2)), std::string::npos)
      << problems[0];
  setSnapshot(f4.states({{"green", ServiceState::down}}));
  EXPECT_EQ(fetch(p2), "down #green: down (health timeout: no answer in 5s)\n");

  // No agent_listen any more: everything closed.
  Fixture f5;
  f5.cluster("green", "");
  problems = loop_.run([&] { return agents_->reload(*f5.config); });
  EXPECT_TRUE(problems.empty());
  EXPECT_FALSE(portAccepts(p2));
}

// ---------------------------------------------------------------------------
// A real HAProxy whose server's agent-check asks the vigie binary.

// HAProxy's `show stat` over its stats socket: the row of backend/server, by column name.
std::map<std::string, std::string> showStat(const std::string& socket_path,
                                            const std::string& backend, const std::string& server) {
  std::map<std::string, std::string> row;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return row;
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket_path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return row;
  }
  const std::string cmd = "show stat\n";
  if (::write(fd, cmd.data(), cmd.size()) != static_cast<ssize_t>(cmd.size())) {
    ::close(fd);
    return row;
  }
  const std::string csv = readAll(fd);
  ::close(fd);
  // CSV as HAProxy writes it: free text with a comma or quote is quoted, "" inside.
  auto split = [](const std::string& line) {
    std::vector<std::string> out(1);
    bool quoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (quoted) {
        if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
          out.back().push_back('"');
          ++i;
        } else if (c == '"') {
          quoted = false;
        } else {
          out.back().push_back(c);
        }
      } else if (c == '"') {
        quoted = true;
      } else if (c == ',') {
        out.emplace_back();
      } else {
        out.back().push_back(c);
      }
    }
    return out;
  };
  std::istringstream in(csv);
  std::string line;
  if (!std::getline(in, line) || line.rfind("# ", 0) != 0) return row;
  const auto header = split(line.substr(2));
  while (std::getline(in, line)) {
    const auto cells = split(line);
    if (cells.size() < 2 || cells[0] != backend || cells[1] != server) continue;
    for (std::size_t i = 0; i < header.size() && i < cells.size(); ++i) row[header[i]] = cells[i];
    break;
  }
  return row;
}

long httpStatus(const std::string& url) {
  long status = 0;
  CURL* c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(
      c, CURLOPT_WRITEFUNCTION, +[](char*, size_t s, size_t n, void*) -> size_t { return s * n; });
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  return status;
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

class WithHaproxy : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::makeTempDir("haproxy-agent");
    test::writeFile(nginx_.root() + "/ok", "OK\n");
    test::writeFile(nginx_.root() + "/extra", "OK\n");
    agent_port_ = freePort();
    front_port_ = freePort();
    vigie_port_ = freePort();
  }
  void TearDown() override { test::removeTree(dir_); }

  std::string vigieConfig(bool maintenance) const {
    std::string y = fmt::format(
        "listen: \"127.0.0.1:{}\"\n"
        "defaults: {{interval: 200ms, timeout: 200ms, failure_threshold: 1}}\n"
        "services:\n"
        "  - name: web\n"
        "    checks:\n"
        "      - name: health\n"
        "        http: {{url: \"{}\"}}\n"
        "      - name: extra\n"
        "        critical: false\n"
        "        http: {{url: \"{}\"}}\n"
        "clusters:\n"
        "  - name: blue\n"
        "    services: [web]\n"
        "    agent_listen: \"127.0.0.1:{}\"\n",
        vigie_port_, nginx_.url("/ok"), nginx_.url("/extra"), agent_port_);
    if (maintenance) {
      y += fmt::format(
          "maintenance:\n"
          "  - services: [web]\n"
          "    start: \"{}\"\n"
          "    duration: 1h\n"
          "    reason: \"kernel upgrade\"\n",
          rfc3339(std::chrono::system_clock::now() - 1min));
    }
    return y;
  }

  std::string haproxyConfig() const {
    return fmt::format(
        "global\n"
        "  stats socket {}/haproxy.sock level admin\n"
        "defaults\n"
        "  mode http\n"
        "  timeout connect 1s\n"
        "  timeout client 5s\n"
        "  timeout server 5s\n"
        "  timeout check 1s\n"
        "frontend fe\n"
        "  bind 127.0.0.1:{}\n"
        "  default_backend blue\n"
        "backend blue\n"
        "  server s1 127.0.0.1:{} weight 100 check inter 300ms agent-check agent-addr 127.0.0.1 "
        "agent-port {} agent-inter 200ms\n",
        dir_, front_port_, nginx_.port(), agent_port_);
  }

  test::Nginx nginx_;
  std::string dir_;
  int agent_port_ = 0;
  int front_port_ = 0;
  int vigie_port_ = 0;
};

TEST_F(WithHaproxy, FollowsTheClusterUpDegradedDownDrainAndUpAgain) {
  const std::string vigie_file = dir_ + "/vigie.yaml";
  test::writeFile(vigie_file, vigieConfig(false));
  test::Process vigie({{VIGIE_BINARY, "--config", vigie_file}, {}, dir_ + "/vigie.log", ""});
  ASSERT_TRUE(eventually(5s, [&] { return portAccepts(agent_port_); })) << vigie.output();

  const std::string haproxy_file = dir_ + "/haproxy.cfg";
  test::writeFile(haproxy_file, haproxyConfig());
  test::Process haproxy(
      {{"/usr/sbin/haproxy", "-f", haproxy_file, "-db"}, {}, dir_ + "/haproxy.log", ""});
  const std::string sock = dir_ + "/haproxy.sock";
  const std::string front = fmt::format("http://127.0.0.1:{}/ok", front_port_);

  std::map<std::string, std::string> row;
  auto waitFor = [&](const std::function<bool()>& pred) {
    return eventually(5s, [&] {
      row = showStat(sock, "blue", "s1");
      return pred();
    });
  };
  auto dump = [&] {
    std::string s;
    for (const char* k : {"status", "weight", "last_agt", "agent_status", "check_status"}) {
      s += fmt::format("{}={} ", k, row[k]);
    }
    return s + "\n--- vigie:\n" + vigie.output() + "\n--- haproxy:\n" + haproxy.output();
  };

  // web up: the cluster is up.
  ASSERT_TRUE(waitFor([&] { return row["status"] == "UP" && row["last_agt"] == "via agent : up"; }))
      << dump();
  EXPECT_EQ(row["weight"], "100");
  EXPECT_EQ(httpStatus(front), 200);

  // A non-critical check fails: degraded, still in rotation at half weight.
  ASSERT_EQ(::unlink((nginx_.root() + "/extra").c_str()), 0);
  ASSERT_TRUE(waitFor([&] { return row["status"] == "UP" && row["weight"] == "50"; })) << dump();
  EXPECT_EQ(httpStatus(front), 200);
  test::writeFile(nginx_.root() + "/extra", "OK\n");
  ASSERT_TRUE(waitFor([&] { return row["weight"] == "100"; })) << dump();

  // The critical check fails: DOWN, with vigie's reason in HAProxy's agent status.
  ASSERT_EQ(::unlink((nginx_.root() + "/ok").c_str()), 0);
  ASSERT_TRUE(waitFor([&] { return row["status"].rfind("DOWN", 0) == 0; })) << dump();
  EXPECT_EQ(row["agent_status"], "L7STS") << dump();
  EXPECT_EQ(row["last_agt"].rfind("via agent : down (web: down (health http_status", 0), 0u)
      << dump();
  EXPECT_EQ(httpStatus(front), 503);  // no server left: HAProxy's own 503

  // Recovery: UP again.
  test::writeFile(nginx_.root() + "/ok", "OK\n");
  ASSERT_TRUE(waitFor([&] { return row["status"] == "UP" && row["last_agt"] == "via agent : up"; }))
      << dump();
  EXPECT_EQ(httpStatus(front), 200);

  // A maintenance window covering now (by reload): DRAIN, no new traffic.
  test::writeFile(vigie_file, vigieConfig(true));
  ASSERT_EQ(::kill(vigie.pid(), SIGHUP), 0);
  // Shown "DRAIN (agent)": the agent set it.
  ASSERT_TRUE(waitFor([&] { return row["status"].rfind("DRAIN", 0) == 0; })) << dump();
  EXPECT_EQ(httpStatus(front), 503);
  EXPECT_TRUE(portAccepts(agent_port_));  // the reload kept the listener

  // The window removed: READY and UP again.
  test::writeFile(vigie_file, vigieConfig(false));
  ASSERT_EQ(::kill(vigie.pid(), SIGHUP), 0);
  ASSERT_TRUE(waitFor([&] { return row["status"] == "UP"; })) << dump();
  EXPECT_EQ(row["weight"], "100");
  EXPECT_EQ(httpStatus(front), 200);
}

}  // namespace
}  // namespace vigie
