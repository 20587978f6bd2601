#pragma once
/// \file
/// A throwaway PostgreSQL cluster for tests: initdb into a temporary directory,
/// run as the system user `postgres` (the tests run as root, which PostgreSQL
/// refuses), listening on 127.0.0.1 on a free port, password authentication
/// (scram-sha-256) for every connection.

#include <chrono>
#include <string>

namespace vigie::test {

/// The cluster, with a role `user()` (password `password()`) owning a database
/// `database()`, and the superuser `postgres` (password superPassword()). Server
/// binaries come from /usr/lib/postgresql/15/bin.
///
/// initdb takes a few seconds: a test binary should share one instance (a static
/// or a gtest Environment). The constructor returns once the server accepts
/// connections, and throws std::runtime_error (with the tool's output or the
/// server log) when anything fails or takes more than ~30 s. The destructor stops
/// the server (immediate mode) and removes the directory.
/// Thread: use from one thread.
class Postgres {
 public:
  Postgres();
  ~Postgres();
  Postgres(const Postgres&) = delete;
  Postgres& operator=(const Postgres&) = delete;

  int port() const { return port_; }
  /// The temporary directory (data in dir()/data, the unix socket in dir()).
  const std::string& dir() const { return dir_; }
  static const std::string& user();
  /// Contains a quote, a space and `%`, so DSN quoting and URI encoding are exercised.
  static const std::string& password();
  static const std::string& database();
  static const std::string& superPassword();

  /// "postgresql://user:password@127.0.0.1:port/db?sslmode=disable", each part
  /// percent-encoded.
  std::string dsn(const std::string& user, const std::string& password,
                  const std::string& db) const;
  /// The same as key=value pairs ("host=127.0.0.1 port=... user='...' ...").
  std::string keyValueDsn(const std::string& user, const std::string& password,
                          const std::string& db) const;

  /// Runs SQL statements (one psql -c each) as the superuser in database `db`.
  /// Returns psql's output (unaligned, tuples only); throws std::runtime_error on error.
  std::string sql(const std::string& statements, const std::string& db = "postgres");

  /// Stops the server at once (pg_ctl stop -m immediate) and waits until it is gone.
  void stop();
  /// Starts it again on the same data directory and port; returns once it is ready.
  void start();
  bool running() const { return running_; }

  /// The server's log so far.
  std::string log() const;

 private:
  std::string dir_;
  std::string data_;
  int port_ = 0;
  bool running_ = false;
};

}  // namespace vigie::test
