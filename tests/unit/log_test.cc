// JSON log lines (VIGIE_LOG_FORMAT=json): the message escaper keeps every line JSON.

#include "collector/log.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

namespace vigie {
namespace {

std::string decoded(const std::string& raw) {
  boost::system::error_code ec;
  const auto v = boost::json::parse("\"" + jsonEscape(raw) + "\"", ec);
  EXPECT_FALSE(ec) << ec.message() << " for " << jsonEscape(raw);
  return ec ? std::string() : std::string(v.get_string());
}

TEST(JsonEscape, QuotesBackslashesAndControls) {
  EXPECT_EQ(jsonEscape("a\"b\\c\nd\re\tf\x01g"), "a\\\"b\\\\c\\nd\\re\\tf\\u0001g");
  EXPECT_EQ(decoded(std::string("nul\0byte", 8)), std::string("nul\0byte", 8));
}

TEST(JsonEscape, KeepsUtf8) {
  EXPECT_EQ(jsonEscape("caf\xC3\xA9 \xF0\x9F\x92\xA5 \xE2\x82\xAC"), "caf\xC3\xA9 \xF0\x9F\x92\xA5 \xE2\x82\xAC");
}

// Found by tests/fuzz/config_fuzz: a config error quoting a Latin-1 byte (here an
// invalid regex) made a JSON log line that is not JSON.
TEST(JsonEscape, InvalidUtf8BecomesReplacementCharacter) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(decoded("caf\xE9"), "caf" + r);
  EXPECT_EQ(decoded("\xFF\xFE"), r + r);
  EXPECT_EQ(decoded("\xC3"), r);                  // truncated sequence
  EXPECT_EQ(decoded("\xC0\xAF"), r + r);          // overlong '/'
  EXPECT_EQ(decoded("\xED\xA0\x80"), r + r + r);  // UTF-16 surrogate
  EXPECT_EQ(decoded("\xF4\x90\x80\x80"), r + r + r + r);  // past U+10FFFF
  EXPECT_EQ(decoded("ok\xC3\xA9\xE9ok"), "ok\xC3\xA9" + r + "ok");
}

}  // namespace
}  // namespace vigie
