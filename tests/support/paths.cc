#include "tests/support/paths.h"

namespace vigie::test {
const char* sourceDir() { return VIGIE_TEST_SOURCE_DIR; }
const char* vigieBinary() { return VIGIE_TEST_BINARY; }
}  // namespace vigie::test
