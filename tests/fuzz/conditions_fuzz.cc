// Fuzzes the response conditions (probes/conditions.h). The input's head picks the
// conditions (kinds, JSON pointers, expected values, a regex, statuses, a latency)
// and its rest is the response body, so both what the config says and what a
// hostile target sends are explored. Checked promises: evaluate() never throws,
// each result is named, its detail is bounded, one line, valid UTF-8; evaluateAll()
// answers once per condition and agrees with evaluate(); resolvePointer() points
// inside the document.

#include <fuzzer/FuzzedDataProvider.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "probes/conditions.h"
#include "probes/health_page.h"
#include "tests/fuzz/fuzz_check.h"

namespace vigie {
namespace {

ConditionSpec makeSpec(FuzzedDataProvider& in) {
  ConditionSpec c;
  c.kind = static_cast<ConditionSpec::Kind>(in.ConsumeIntegralInRange<int>(0, 5));
  switch (c.kind) {
    case ConditionSpec::Kind::json_equals:
      c.pointer = in.ConsumeRandomLengthString(64);
      c.value = in.ConsumeRandomLengthString(64);
      break;
    case ConditionSpec::Kind::json_exists:
      c.pointer = in.ConsumeRandomLengthString(64);
      break;
    case ConditionSpec::Kind::body_matches:
      // The pattern is the operator's (compiled at load, where a bad one is refused).
      c.value = in.ConsumeRandomLengthString(48);
      try {
        c.regex = compileRegex(c.value);
      } catch (const std::invalid_argument& e) {
        VIGIE_FUZZ_CHECK(fuzz::validUtf8(e.what()), e.what());
        c.regex = nullptr;  // evaluated anyway: "internal: regex not compiled"
      }
      break;
    case ConditionSpec::Kind::body_contains:
      c.value = in.ConsumeRandomLengthString(64);
      break;
    case ConditionSpec::Kind::latency_below:
      c.latency = std::chrono::milliseconds(in.ConsumeIntegralInRange<std::int64_t>(0, 86'400'000));
      break;
    case ConditionSpec::Kind::status_in: {
      const int n = in.ConsumeIntegralInRange<int>(0, 4);
      for (int i = 0; i < n; ++i) c.statuses.push_back(in.ConsumeIntegralInRange<int>(100, 599));
      break;
    }
  }
  return c;
}

void checkResult(const ConditionResult& r) {
  VIGIE_FUZZ_CHECK(!r.name.empty(), r.detail);
  VIGIE_FUZZ_CHECK(fuzz::validUtf8(r.name), r.name);
  VIGIE_FUZZ_CHECK(r.detail.size() <= 256, r.detail);
  VIGIE_FUZZ_CHECK(fuzz::cleanLine(r.detail), r.detail);
}

// True when `p` is `root` or a value inside it.
bool inside(const boost::json::value& root, const boost::json::value* p, int depth = 0) {
  if (p == &root) return true;
  if (depth > kMaxJsonDepth) return false;
  if (const auto* o = root.if_object()) {
    for (const auto& kv : *o) {
      if (inside(kv.value(), p, depth + 1)) return true;
    }
  } else if (const auto* a = root.if_array()) {
    for (const auto& v : *a) {
      if (inside(v, p, depth + 1)) return true;
    }
  }
  return false;
}

}  // namespace
}  // namespace vigie

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vigie;
  FuzzedDataProvider in(data, size);
  std::vector<ConditionSpec> specs;
  const int n = in.ConsumeIntegralInRange<int>(1, 4);
  for (int i = 0; i < n; ++i) specs.push_back(makeSpec(in));
  ResponseView r;
  r.status = in.ConsumeIntegralInRange<int>(0, 599);
  r.latency_seconds = in.ConsumeFloatingPointInRange<double>(0, 120);
  const bool give_json = in.ConsumeBool();
  const std::string body = in.ConsumeRemainingBytesAsString();
  r.body = body;

  std::string error;
  const auto doc = parseJsonBounded(body, &error);
  if (give_json && doc) r.json = &*doc;

  const std::vector<ConditionResult> all = evaluateAll(specs, r);
  VIGIE_FUZZ_CHECK(all.size() == specs.size(), "");
  for (std::size_t i = 0; i < specs.size(); ++i) {
    checkResult(all[i]);
    const ConditionResult one = evaluate(specs[i], r);
    checkResult(one);
    VIGIE_FUZZ_CHECK(one.ok == all[i].ok, one.name);
    VIGIE_FUZZ_CHECK(one.name == all[i].name, one.name);
    VIGIE_FUZZ_CHECK(fuzz::validUtf8(specs[i].describe()), specs[i].describe());
    if (doc && !specs[i].pointer.empty()) {
      const boost::json::value* v = resolvePointer(*doc, specs[i].pointer);
      VIGIE_FUZZ_CHECK(v == nullptr || inside(*doc, v), specs[i].pointer);
      VIGIE_FUZZ_CHECK(resolvePointer(static_cast<const void*>(&*doc), specs[i].pointer) == v, "");
    }
  }
  return 0;
}
