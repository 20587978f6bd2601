// ConfigWatcher: a Kubernetes ConfigMap volume's atomic ..data symlink swap, an
// in-place rewrite and a rename over the file are each one change; nothing
// changing, or the file missing for a moment, is none.

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "collector/config_watch.h"

namespace vigie {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

void write(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::trunc);
  out << text;
}

struct ConfigMapDir {
  fs::path root;
  int version = 0;
  ConfigMapDir() {
    root = fs::temp_directory_path() /
           ("vigie-watch-" + std::to_string(::getpid()) + "-" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    fs::create_directories(root);
    publish("listen: 127.0.0.1:0\n");
    fs::create_symlink("..data/vigie.yaml", root / "vigie.yaml");
  }
  ~ConfigMapDir() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  // What the kubelet does: a new timestamped directory, a new ..data symlink
  // renamed over the old one (atomic), the old directory removed.
  void publish(const std::string& text) {
    const std::string dir = "..2026_11_29_" + std::to_string(++version);
    fs::create_directories(root / dir);
    write(root / dir / "vigie.yaml", text);
    fs::create_symlink(dir, root / "..data_tmp");
    fs::rename(root / "..data_tmp", root / "..data");
    if (version > 1) fs::remove_all(root / ("..2026_11_29_" + std::to_string(version - 1)));
  }
  std::string path() const { return (root / "vigie.yaml").string(); }
};

// Runs the loop for `d`, then returns.
void runFor(boost::asio::io_context& io, std::chrono::milliseconds d) {
  io.restart();
  io.run_for(d);
}

TEST(ConfigWatch, ConfigMapSymlinkSwapIsOneChange) {
  ConfigMapDir cm;
  boost::asio::io_context io;
  int changes = 0;
  ConfigWatcher w(io, cm.path(), 20ms, [&] { ++changes; });
  w.start();
  runFor(io, 120ms);
  EXPECT_EQ(changes, 0) << "nothing changed";

  // Same size on purpose: the resolved path and inode tell it apart.
  cm.publish("listen: 127.0.0.1:1\n");
  runFor(io, 150ms);
  EXPECT_EQ(changes, 1);
  runFor(io, 100ms);
  EXPECT_EQ(changes, 1) << "one change, one call";

  cm.publish("listen: 127.0.0.1:2\n");
  runFor(io, 150ms);
  EXPECT_EQ(changes, 2);
}

TEST(ConfigWatch, PlainFileRewrittenOrReplaced) {
  const fs::path dir = fs::temp_directory_path() / ("vigie-watch-plain-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "vigie.yaml";
  write(file, "a: 1\n");
  boost::asio::io_context io;
  int changes = 0;
  ConfigWatcher w(io, file.string(), 20ms, [&] { ++changes; });
  w.start();
  runFor(io, 60ms);
  EXPECT_EQ(changes, 0);

  write(file, "a: 12\n");  // in place, longer
  runFor(io, 120ms);
  EXPECT_EQ(changes, 1);

  // An editor's save: write a new file, rename it over the old one.
  write(dir / "vigie.yaml.tmp", "a: 3\n");
  fs::rename(dir / "vigie.yaml.tmp", file);
  runFor(io, 120ms);
  EXPECT_EQ(changes, 2);

  // Gone for a while: no call; back with other content: one.
  fs::remove(file);
  runFor(io, 100ms);
  EXPECT_EQ(changes, 2);
  write(file, "a: 4444\n");
  runFor(io, 120ms);
  EXPECT_EQ(changes, 3);

  w.stop();
  write(file, "a: 5\n");
  runFor(io, 100ms);
  EXPECT_EQ(changes, 3) << "stopped";
  fs::remove_all(dir);
}

TEST(ConfigWatch, IdentityOfAMissingFile) {
  EXPECT_FALSE(fileIdentity("/nonexistent/vigie.yaml").exists);
}

}  // namespace
}  // namespace vigie
