#pragma once
/// \file
/// The in-memory configuration tree: what the YAML reader (yaml-cpp, which also
/// reads JSON) produces before validation. A Boost.Property_tree whose data keeps,
/// beside each value, its kind and where it was written, so every later error can
/// name the file and the line.
///
/// Shape: a mapping's entries are children keyed by their key, in file order; a
/// sequence's items are children with empty keys; a scalar is a leaf whose data
/// holds the text. `${NAME}` is substituted in scalar values (never in keys) while
/// reading. Pure code: no I/O beyond the text given; any thread may call.

#include <boost/property_tree/ptree.hpp>
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace vigie {

enum class NodeKind { null, scalar, map, sequence };

struct NodeData {
  std::string value;  // scalar text after ${ENV} substitution; empty otherwise
  NodeKind kind = NodeKind::null;
  bool quoted = false;  // a quoted scalar ("true" quoted is text, not a bool)
  /// The value came (partly) from ${ENV}: perhaps a secret, so messages that
  /// would quote it do not.
  bool from_env = false;
  int line = 0;         // 1-based position of the value itself
  int column = 0;
  int key_line = 0;  // 1-based line of the key that holds it (0 for items/root)
  /// Set when substitution failed ("environment variable X is not set"): the
  /// value is unusable; the validator reports this with the node's path.
  std::string error;
};

/// The tree. Children of a map are keyed, children of a sequence have "" keys.
using ConfigTree = boost::property_tree::basic_ptree<std::string, NodeData>;

/// A problem found while reading: the syntax error of the reader, or a
/// structural problem (a complex key, a duplicate document).
struct TreeError {
  int line = 0;  // 1-based; 0 when unknown
  int column = 0;
  std::string message;
};

/// Parses `text` (YAML 1.2, hence JSON too) into `out`. Anchors and aliases are
/// expanded, `<<` merge keys applied (explicit keys win). `env` gives the
/// variables for `${NAME}`; null means the process environment. Returns false and
/// appends to `errors` on a syntax error (the tree is then incomplete). A document
/// that expands (through aliases) to more than `max_nodes` values is refused, so
/// a hostile file cannot exhaust memory; 50,000 checks take about 500,000.
bool readConfigTree(std::string_view text, const std::map<std::string, std::string>* env,
                    ConfigTree& out, std::vector<TreeError>& errors,
                    std::size_t max_nodes = 5'000'000);

/// Substitutes `${NAME}` in `text` (`$${` is a literal `${`). Names that are not
/// set are appended to `missing`; a malformed reference sets `*error`.
std::string substituteEnv(std::string_view text, const std::map<std::string, std::string>* env,
                          std::vector<std::string>& missing, std::string* error);

/// "a mapping", "a sequence", "a scalar", "null": for messages.
const char* nodeKindName(NodeKind kind);

}  // namespace vigie
