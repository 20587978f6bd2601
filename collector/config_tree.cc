#include "collector/config_tree.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <cstdlib>
#include <sstream>
#include <unordered_map>

namespace vigie {
namespace {

bool isEnvNameStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool isEnvNameChar(char c) { return isEnvNameStart(c) || (c >= '0' && c <= '9'); }

// yaml-cpp already reports plain null words through OnNull; this is a second
// guard for the forms it may pass as scalars (the empty plain scalar).
bool isPlainNull(const std::string& tag, const std::string& value) {
  if (tag != "?") return false;
  return value.empty() || value == "~" || value == "null" || value == "Null" || value == "NULL";
}

// Aborts the event stream on a structure the tree cannot hold (complex keys).
struct StructureError {
  int line;
  int column;
  std::string message;
};

// Builds the tree top-down: each node is inserted into its parent when its first
// event arrives, and the stack keeps pointers to open collections (children of a
// ptree are node-based, so those pointers stay valid while siblings are added).
class TreeBuilder : public YAML::EventHandler {
 public:
  TreeBuilder(ConfigTree& root, const std::map<std::string, std::string>* env,
              std::size_t max_nodes)
      : root_(root), env_(env), max_nodes_(max_nodes) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (awaitingKey()) throw StructureError{mark.line + 1, mark.column + 1, "a null mapping key"};
    NodeData d;
    d.kind = NodeKind::null;
    setMark(d, mark);
    ConfigTree* n = add(std::move(d));
    if (anchor) anchors_[anchor] = Anchored{*n, 1};
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (awaitingKey())
      throw StructureError{mark.line + 1, mark.column + 1, "an alias as a mapping key"};
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) throw StructureError{mark.line + 1, mark.column + 1, "unknown alias"};
    count(mark.line + 1, mark.column + 1, it->second.nodes);
    ConfigTree copy = it->second.tree;
    std::string key;
    int key_line = 0;
    takeKey(key, key_line);
    copy.data().key_line = key_line;
    if (stack_.empty()) {
      root_ = std::move(copy);
      return;
    }
    stack_.back().node->push_back(ConfigTree::value_type(std::move(key), std::move(copy)));
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    if (awaitingKey()) {
      auto& top = stack_.back();
      top.key = value;
      top.key_line = mark.line + 1;
      top.have_key = true;
      return;
    }
    NodeData d;
    setMark(d, mark);
    if (isPlainNull(tag, value)) {
      d.kind = NodeKind::null;
    } else {
      d.kind = NodeKind::scalar;
      d.quoted = tag != "?";
      if (value.find('$') == std::string::npos) {
        d.value = value;
      } else {
        std::vector<std::string> missing;
        std::string error;
        d.value = substituteEnv(value, env_, missing, &error);
        d.from_env = d.value != value;
        if (!error.empty()) {
          d.error = error;
        } else if (missing.size() == 1) {
          d.error = "environment variable " + missing[0] + " is not set";
        } else if (!missing.empty()) {
          d.error = "environment variables ";
          for (std::size_t i = 0; i < missing.size(); ++i) {
            d.error += (i ? ", " : "") + missing[i];
          }
          d.error += " are not set";
        }
      }
    }
    ConfigTree* n = add(std::move(d));
    if (anchor) anchors_[anchor] = Anchored{*n, 1};
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, anchor, NodeKind::sequence);
  }
  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, anchor, NodeKind::map);
  }
  void OnMapEnd() override {
    applyMerge(*stack_.back().node);
    close();
  }

 private:
  struct Open {
    ConfigTree* node;
    bool is_map;
    bool have_key = false;
    std::string key;
    int key_line = 0;
    YAML::anchor_t anchor = 0;
    std::size_t first_node = 0;
  };

  struct Anchored {
    ConfigTree tree;
    std::size_t nodes = 0;  // its size, so expanding aliases is counted
  };

  // Nested aliases can expand exponentially ("billion laughs"): a bound on the
  // nodes of the expanded tree keeps a hostile file from exhausting memory.

  void count(int line, int column, std::size_t n) {
    nodes_ += n;
    if (nodes_ > max_nodes_) {
      throw StructureError{
          line, column,
          "the document expands to more than " + std::to_string(max_nodes_) + " values (aliases?)"};
    }
  }

  static void setMark(NodeData& d, const YAML::Mark& mark) {
    d.line = mark.line + 1;
    d.column = mark.column + 1;
  }

  bool awaitingKey() const {
    return !stack_.empty() && stack_.back().is_map && !stack_.back().have_key;
  }

  void takeKey(std::string& key, int& key_line) {
    if (stack_.empty() || !stack_.back().is_map) return;
    auto& top = stack_.back();
    key = std::move(top.key);
    key_line = top.key_line;
    top.have_key = false;
    top.key.clear();
  }

  ConfigTree* add(NodeData d) {
    count(d.line, d.column, 1);
    if (stack_.empty()) {
      root_ = ConfigTree(std::move(d));
      return &root_;
    }
    std::string key;
    takeKey(key, d.key_line);
    auto it = stack_.back().node->push_back(
        ConfigTree::value_type(std::move(key), ConfigTree(std::move(d))));
    return &it->second;
  }

  void open(const YAML::Mark& mark, YAML::anchor_t anchor, NodeKind kind) {
    if (awaitingKey()) {
      throw StructureError{mark.line + 1, mark.column + 1,
                           "a mapping key must be a plain value, not a mapping or a sequence"};
    }
    NodeData d;
    d.kind = kind;
    setMark(d, mark);
    ConfigTree* n = add(std::move(d));
    stack_.push_back(Open{n, kind == NodeKind::map});
    stack_.back().first_node = nodes_;
    stack_.back().anchor = anchor;
  }

  void close() {
    Open top = std::move(stack_.back());
    stack_.pop_back();
    if (top.anchor) anchors_[top.anchor] = Anchored{*top.node, nodes_ - top.first_node + 1};
  }

  // YAML merge keys (`<<: *base`): keys already present win, then earlier sources.
  static void applyMerge(ConfigTree& map) {
    auto it = map.find("<<");
    if (it == map.not_found()) return;
    std::vector<ConfigTree> sources;
    for (auto& [key, child] : map) {
      if (key != "<<") continue;
      if (child.data().kind == NodeKind::map) {
        sources.push_back(child);
      } else if (child.data().kind == NodeKind::sequence) {
        for (auto& [k, item] : child) {
          if (item.data().kind != NodeKind::map) {
            throw StructureError{item.data().line, item.data().column,
                                 "a merge key (<<) takes a mapping or a sequence of mappings"};
          }
          sources.push_back(item);
        }
      } else {
        throw StructureError{child.data().line, child.data().column,
                             "a merge key (<<) takes a mapping or a sequence of mappings"};
      }
    }
    map.erase("<<");
    for (auto& src : sources) {
      for (auto& [key, child] : src) {
        if (map.find(key) == map.not_found()) map.push_back(ConfigTree::value_type(key, child));
      }
    }
  }

  ConfigTree& root_;
  const std::map<std::string, std::string>* env_;
  std::vector<Open> stack_;
  std::unordered_map<YAML::anchor_t, Anchored> anchors_;
  std::size_t nodes_ = 0;
  std::size_t max_nodes_;
};

}  // namespace

const char* nodeKindName(NodeKind kind) {
  switch (kind) {
    case NodeKind::null:
      return "null";
    case NodeKind::scalar:
      return "a scalar";
    case NodeKind::map:
      return "a mapping";
    case NodeKind::sequence:
      return "a sequence";
  }
  return "?";
}

std::string substituteEnv(std::string_view text, const std::map<std::string, std::string>* env,
                          std::vector<std::string>& missing, std::string* error) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '$' && text.substr(i, 3) == "$${") {
      out += "${";
      i += 3;
      continue;
    }
    if (c != '$' || text.substr(i, 2) != "${") {
      out += c;
      ++i;
      continue;
    }
    const auto close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      if (error) *error = "unterminated \"${\" (write \"$${\" for a literal \"${\")";
      return out;
    }
    const std::string name(text.substr(i + 2, close - i - 2));
    bool valid = !name.empty() && isEnvNameStart(name[0]);
    for (char n : name) valid = valid && isEnvNameChar(n);
    if (!valid) {
      if (error) *error = "invalid environment variable reference \"${" + name + "}\"";
      return out;
    }
    if (env) {
      auto it = env->find(name);
      if (it != env->end()) {
        out += it->second;
      } else {
        missing.push_back(name);
      }
    } else if (const char* v = std::getenv(name.c_str())) {
      out += v;
    } else {
      missing.push_back(name);
    }
    i = close + 1;
  }
  return out;
}

bool readConfigTree(std::string_view text, const std::map<std::string, std::string>* env,
                    ConfigTree& out, std::vector<TreeError>& errors, std::size_t max_nodes) {
  out = ConfigTree();
  std::istringstream in{std::string(text)};
  try {
    YAML::Parser parser(in);
    TreeBuilder builder(out, env, max_nodes);
    parser.HandleNextDocument(builder);
    if (parser.HandleNextDocument(builder)) {
      errors.push_back({0, 0, "only one YAML document is allowed"});
      return false;
    }
  } catch (const YAML::Exception& e) {
    errors.push_back({e.mark.line + 1, e.mark.column + 1,
                      "syntax error (column " + std::to_string(e.mark.column + 1) + "): " + e.msg});
    return false;
  } catch (const StructureError& e) {
    errors.push_back({e.line, e.column, e.message});
    return false;
  }
  return true;
}

}  // namespace vigie
