#include "tests/support/postgres.h"

#include <fmt/format.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <vector>

#include "tests/support/ports.h"
#include "tests/support/process.h"

namespace vigie::test {
namespace {

using namespace std::chrono_literals;

const std::string kBin = "/usr/lib/postgresql/15/bin/";
const std::string kRunuser = "/usr/sbin/runuser";
const std::string kServerUser = "postgres";

// Runs a tool to its end; throws with its output when it fails or hangs.
std::string run(std::vector<std::string> args, const std::string& output_file,
                std::chrono::milliseconds timeout, std::map<std::string, std::string> env = {}) {
  env.emplace("LC_ALL", "C");
  env.emplace("LANG", "C");
  const std::string shown = fmt::format("{}", fmt::join(args, " "));
  std::filesystem::remove(output_file);  // Process appends
  Process p({std::move(args), std::move(env), output_file, "/"});
  const auto status = p.wait(timeout);
  if (!status) {
    p.stop(500ms);
    throw std::runtime_error(
        fmt::format("{} did not end within {} ms:\n{}", shown, timeout.count(), p.output()));
  }
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    throw std::runtime_error(fmt::format("{} failed (status {}):\n{}", shown, *status, p.output()));
  }
  return p.output();
}

// The server refuses to run as root: every server tool runs as `postgres`.
std::vector<std::string> asServerUser(std::vector<std::string> args) {
  std::vector<std::string> out = {kRunuser, "-u", kServerUser, "--"};
  out.insert(out.end(), args.begin(), args.end());
  return out;
}

void chownToServerUser(const std::string& path) {
  const passwd* pw = ::getpwnam(kServerUser.c_str());
  if (pw == nullptr) throw std::runtime_error("no system user " + kServerUser);
  if (::chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    throw std::runtime_error("chown " + path + " failed");
  }
}

std::string percentEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string quoteConninfo(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string sqlLiteral(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

}  // namespace

const std::string& Postgres::user() {
  static const std::string u = "vigie";
  return u;
}
const std::string& Postgres::password() {
  static const std::string p = "Sc'ram 5ecret%pw";
  return p;
}
const std::string& Postgres::database() {
  static const std::string d = "app";
  return d;
}
const std::string& Postgres::superPassword() {
  static const std::string p = "superuser-pw-7f3a";
  return p;
}

Postgres::Postgres() {
  // Not makeTempDir(): $TMPDIR may be a directory the server's user cannot enter.
  std::string tmpl = "/tmp/vigie-pg-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed: " + tmpl);
  dir_ = tmpl;
  data_ = dir_ + "/data";
  try {
    chownToServerUser(dir_);
    const std::string pwfile = dir_ + "/pwfile";
    writeFile(pwfile, superPassword() + "\n");
    chownToServerUser(pwfile);

    run(asServerUser({kBin + "initdb", "-D", data_, "-U", "postgres", "-A", "scram-sha-256",
                      "--pwfile", pwfile, "-E", "UTF8", "--no-sync"}),
        dir_ + "/initdb.log", 60s);
    std::filesystem::remove(pwfile);

    port_ = freePort();
    {
      std::string conf = readFile(data_ + "/postgresql.conf");
      conf += fmt::format(
          "\n# vigie tests\nport = {}\nlisten_addresses = '127.0.0.1'\n"
          "unix_socket_directories = '{}'\nfsync = off\nfull_page_writes = off\n"
          "synchronous_commit = off\nmax_connections = 40\nshared_buffers = 16MB\n"
          "password_encryption = 'scram-sha-256'\n",
          port_, dir_);
      writeFile(data_ + "/postgresql.conf", conf);
      writeFile(data_ + "/pg_hba.conf",
                "local all all scram-sha-256\n"
                "host all all 127.0.0.1/32 scram-sha-256\n"
                "host all all ::1/128 scram-sha-256\n");
    }
    start();
    sql(fmt::format("CREATE ROLE {} LOGIN PASSWORD {}", user(), sqlLiteral(password())) + ";\n" +
        fmt::format("CREATE DATABASE {} OWNER {}", database(), user()));
  } catch (...) {
    if (running_) stop();
    removeTree(dir_);
    throw;
  }
}

Postgres::~Postgres() {
  try {
    if (running_) stop();
  } catch (...) {
    // Best effort: the directory goes anyway.
  }
  removeTree(dir_);
}

std::string Postgres::dsn(const std::string& user, const std::string& password,
                          const std::string& db) const {
  return fmt::format("postgresql://{}:{}@127.0.0.1:{}/{}?sslmode=disable", percentEncode(user),
                     percentEncode(password), port_, percentEncode(db));
}

std::string Postgres::keyValueDsn(const std::string& user, const std::string& password,
                                  const std::string& db) const {
  return fmt::format("host=127.0.0.1 port={} user={} password={} dbname={} sslmode=disable", port_,
                     quoteConninfo(user), quoteConninfo(password), quoteConninfo(db));
}

std::string Postgres::sql(const std::string& statements, const std::string& db) {
  std::vector<std::string> args = {kBin + "psql",
                                   "-X",
                                   "-q",
                                   "-A",
                                   "-t",
                                   "-v",
                                   "ON_ERROR_STOP=1",
                                   "-h",
                                   "127.0.0.1",
                                   "-p",
                                   std::to_string(port_),
                                   "-U",
                                   "postgres",
                                   "-d",
                                   db};
  // One -c per statement: CREATE DATABASE cannot run inside psql's implicit
  // transaction of a multi-statement -c.
  std::size_t from = 0;
  while (from < statements.size()) {
    auto end = statements.find(";\n", from);
    if (end == std::string::npos) end = statements.size();
    args.push_back("-c");
    args.push_back(statements.substr(from, end - from));
    from = end + 2;
  }
  return run(std::move(args), dir_ + "/psql.log", 30s, {{"PGPASSWORD", superPassword()}});
}

void Postgres::stop() {
  run(asServerUser({kBin + "pg_ctl", "-D", data_, "-m", "immediate", "-w", "-t", "30", "stop"}),
      dir_ + "/pg_ctl.log", 40s);
  running_ = false;
}

void Postgres::start() {
  try {
    run(asServerUser(
            {kBin + "pg_ctl", "-D", data_, "-l", dir_ + "/server.log", "-w", "-t", "30", "start"}),
        dir_ + "/pg_ctl.log", 40s);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(e.what()) + "\nserver log:\n" + log());
  }
  running_ = true;
}

std::string Postgres::log() const { return readFile(dir_ + "/server.log"); }

}  // namespace vigie::test
