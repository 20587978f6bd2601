// The status page escapes everything that comes from a target or a config.

#include <gtest/gtest.h>

#include "collector/check_state.h"
#include "exporters/index_page.h"

namespace vigie {
namespace {

TEST(IndexPage, EscapesHostileValuesAndSortsProblemsFirst) {
  auto cfg = std::make_shared<Config>();
  for (const char* name : {"calm", "evil"}) {
    ServiceConfig s;
    s.name = name;
    s.group = "g<b>";
    CheckConfig c;
    c.name = "health";
    c.key = std::string(name) + "/health";
    c.spec = HttpSpec{};
    s.checks.push_back(c);
    cfg->services.push_back(s);
  }
  Snapshot snap;
  snap.config = cfg;
  for (const auto& s : cfg->services) {
    CheckStatus st;
    st.check = std::shared_ptr<const CheckConfig>(cfg, &s.checks[0]);
    st.service = std::shared_ptr<const ServiceConfig>(cfg, &s);
    Result r = s.name == "evil"
                   ? Result::failure(Reason::health_fail, "<script>alert(1)</script>")
                   : Result::ok();
    r.version = s.name == "evil" ? "<img src=x onerror=alert(2)>" : "1.0";
    snap.checks.push_back(applyResult(st, r, {1, 1}));
  }
  const auto html = renderIndexPage(&snap, SystemClock::now());
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("&lt;img src=x onerror=alert(2)&gt;"), std::string::npos);
  EXPECT_NE(html.find("g&lt;b&gt;"), std::string::npos);
  EXPECT_LT(html.find("evil/health"), html.find("calm/health"));  // down sorts first
  EXPECT_NE(html.find("class=\"state down\">down"), std::string::npos);  // word, not colour alone
  EXPECT_NE(html.find("1 down"), std::string::npos);
}

TEST(IndexPage, NoConfigYet) {
  EXPECT_NE(renderIndexPage(nullptr, SystemClock::now()).find("No configuration"), std::string::npos);
}

TEST(IndexPage, HtmlEscape) {
  EXPECT_EQ(htmlEscape(R"(<a href="x">'&'</a>)"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
}

}  // namespace
}  // namespace vigie
