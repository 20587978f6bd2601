// Fuzzes the configuration loader (collector/config.h): the input is a file's text,
// YAML or JSON, read by parseConfig() as `vigie check-config` and a reload read it.
// Checked promises: the only exception is ConfigException (vigie's start-up and
// reload catch that one); it lists at least one error, each rendered on its own
// with the file name, and stays a JSON string once escaped for a JSON log line; a
// loaded config has unique service names and unique check
// keys; redactDsn() never lets a DSN password through.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <set>
#include <string>

#include <boost/json.hpp>

#include "collector/config.h"
#include "collector/log.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vigie;
  static const std::map<std::string, std::string> kEnv = {
      {"TOKEN", "0123456789abcdef0123"},
      {"DSN", "postgresql://vigie:hunter2-fuzz@127.0.0.1:5432/app"},
      {"HOST", "127.0.0.1"},
      {"EMPTY", ""},
  };
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto cfg = parseConfig(text, "/etc/vigie/fuzz.yaml", &kEnv);
    VIGIE_FUZZ_CHECK(cfg != nullptr, "");
    std::set<std::string> services, keys;
    for (const auto& s : cfg->services) {
      VIGIE_FUZZ_CHECK(services.insert(s.name).second, s.name);
      for (const auto& c : s.checks) {
        VIGIE_FUZZ_CHECK(keys.insert(c.key).second, c.key);
        VIGIE_FUZZ_CHECK(c.key == s.name + "/" + c.name, c.key);
      }
    }
    VIGIE_FUZZ_CHECK(redactDsn(kEnv.at("DSN")).find("hunter2") == std::string::npos, "");
  } catch (const ConfigException& e) {
    VIGIE_FUZZ_CHECK(!e.errors().empty(), "");
    for (const auto& err : e.errors()) {
      VIGIE_FUZZ_CHECK(err.file == "fuzz.yaml", err.str());
      VIGIE_FUZZ_CHECK(err.line >= 0, err.str());
      VIGIE_FUZZ_CHECK(!err.message.empty(), err.str());
      // As a reload failure is logged with VIGIE_LOG_FORMAT=json: still one JSON string.
      boost::system::error_code ec;
      const auto logged = boost::json::parse("\"" + jsonEscape(err.str()) + "\"", ec);
      VIGIE_FUZZ_CHECK(!ec && logged.is_string() && !logged.get_string().empty(), err.str());
    }
  } catch (const std::exception& e) {
    fuzz::fail("parseConfig threw something else than ConfigException", e.what());
  }
  // The redaction on any text, as the loader and the probes apply it to a DSN.
  const std::string red = redactDsn(text);
  (void)red;
  return 0;
}
