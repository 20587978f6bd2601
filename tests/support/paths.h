#pragma once
/// \file
/// Where the tests find the sources (sample files, examples) and the vigie binary.
/// Defined in paths.cc, the one file compiled with these absolute paths: every other
/// test file compiles to the same bytes whatever folder the repository is cloned into,
/// so ccache hits across CI clones.

namespace vigie::test {
const char* sourceDir();    // the repository (PROJECT_SOURCE_DIR)
const char* vigieBinary();  // the vigie binary of this build
}  // namespace vigie::test

#define VIGIE_SOURCE_DIR (::vigie::test::sourceDir())
#define VIGIE_BINARY (::vigie::test::vigieBinary())
