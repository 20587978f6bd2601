// libfuse 3.12+ API: it lets the loop have more serving threads than the default
// ten, so a test with many operations blocked at once still gets its getattr and
// readdir answered.
#define FUSE_USE_VERSION 312

#include "tests/support/hang_fs.h"

#include <fuse3/fuse.h>
#include <fuse3/fuse_lowlevel.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace vigie::test {

struct HangFs::State {
  struct File {
    std::string data;
    mode_t mode = 0644;
  };

  std::string path;
  std::string error;
  bool mounted = false;
  struct fuse* fuse = nullptr;
  std::thread loop;
  std::string conn_id;  // minor device number of the mount: /sys/fs/fuse/connections/<id>

  mutable std::mutex mu;
  mutable std::condition_variable cv;
  Mode mode = Mode::normal;
  bool closing = false;
  std::size_t blocked = 0;
  std::map<std::string, File> files;  // name without the leading '/'

  bool hangs(bool is_create) const {
    return mode == Mode::hang_writes || (mode == Mode::hang_data && !is_create);
  }

  // Holds the caller while writes hang. Returns 0 to go on, or -EIO when the file
  // system is being torn down.
  int gate(std::unique_lock<std::mutex>& lock, bool is_create = false) {
    if (hangs(is_create) && !closing) {
      ++blocked;
      cv.notify_all();
      cv.wait(lock, [&] { return !hangs(is_create) || closing; });
      --blocked;
    }
    return closing ? -EIO : 0;
  }
};

namespace {

constexpr unsigned kMaxServingThreads = 64;
constexpr std::uint64_t kBlockSize = 4096;
constexpr std::uint64_t kBlocks = 262144;  // 1 GiB
constexpr std::uint64_t kInodes = 1000000;
constexpr const char* kFsNamePrefix = "vigie-hangfs-";
constexpr const char* kFsType = "fuse.hangfs";

HangFs::State& st() { return *static_cast<HangFs::State*>(fuse_get_context()->private_data); }

// "/name" -> "name"; "" for the root.
std::string nameOf(const char* path) { return path[0] == '/' ? std::string(path + 1) : path; }

void* fsInit(fuse_conn_info*, fuse_config* cfg) {
  // Every read and write must reach the handlers: no page cache, no cached entries.
  cfg->direct_io = 1;
  cfg->kernel_cache = 0;
  cfg->entry_timeout = 0;
  cfg->attr_timeout = 0;
  cfg->negative_timeout = 0;
  // An unlinked file disappears at once (no .fuse_hidden* left in the listing).
  cfg->hard_remove = 1;
  return fuse_get_context()->private_data;
}

int fsGetattr(const char* path, struct stat* s, fuse_file_info*) {
  auto& fs = st();
  std::memset(s, 0, sizeof(*s));
  const std::string name = nameOf(path);
  std::lock_guard lock(fs.mu);
  if (name.empty()) {
    s->st_mode = S_IFDIR | 0755;
    s->st_nlink = 2;
    return 0;
  }
  auto it = fs.files.find(name);
  if (it == fs.files.end()) return -ENOENT;
  s->st_mode = S_IFREG | it->second.mode;
  s->st_nlink = 1;
  s->st_size = static_cast<off_t>(it->second.data.size());
  s->st_blksize = kBlockSize;
  s->st_blocks = static_cast<blkcnt_t>((it->second.data.size() + 511) / 512);
  return 0;
}

int fsReaddir(const char* path, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info*,
              fuse_readdir_flags) {
  auto& fs = st();
  if (!nameOf(path).empty()) return -ENOTDIR;
  fill(buf, ".", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  fill(buf, "..", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  std::lock_guard lock(fs.mu);
  for (const auto& [name, file] : fs.files) {
    fill(buf, name.c_str(), nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  }
  return 0;
}

int fsCreate(const char* path, mode_t mode, fuse_file_info* fi) {
  auto& fs = st();
  const std::string name = nameOf(path);
  if (name.empty() || name.find('/') != std::string::npos) return -EACCES;
  std::unique_lock lock(fs.mu);
  if (int e = fs.gate(lock, true)) return e;
  auto [it, inserted] = fs.files.try_emplace(name);
  if (!inserted && (fi->flags & O_EXCL)) return -EEXIST;
  it->second.mode = mode & 07777;
  if (fi->flags & O_TRUNC) it->second.data.clear();
  fi->direct_io = 1;
  return 0;
}

int fsOpen(const char* path, fuse_file_info* fi) {
  auto& fs = st();
  std::lock_guard lock(fs.mu);
  auto it = fs.files.find(nameOf(path));
  if (it == fs.files.end()) return -ENOENT;
  if (fi->flags & O_TRUNC) it->second.data.clear();
  fi->direct_io = 1;
  return 0;
}

int fsRead(const char* path, char* buf, size_t size, off_t off, fuse_file_info*) {
  auto& fs = st();
  std::lock_guard lock(fs.mu);
  auto it = fs.files.find(nameOf(path));
  if (it == fs.files.end()) return -ENOENT;
  const std::string& data = it->second.data;
  const auto start = static_cast<std::size_t>(off);
  if (start >= data.size()) return 0;
  const std::size_t n = std::min(size, data.size() - start);
  std::memcpy(buf, data.data() + start, n);
  // A lying server or a bad disk: the first byte of the file comes back flipped.
  if (fs.mode == HangFs::Mode::corrupt_reads && start == 0 && n > 0) buf[0] ^= 0x5a;
  return static_cast<int>(n);
}

int fsWrite(const char* path, const char* buf, size_t size, off_t off, fuse_file_info*) {
  auto& fs = st();
  std::unique_lock lock(fs.mu);
  if (int e = fs.gate(lock)) return e;
  auto it = fs.files.find(nameOf(path));
  if (it == fs.files.end()) return -ENOENT;
  std::string& data = it->second.data;
  const auto start = static_cast<std::size_t>(off);
  if (data.size() < start + size) data.resize(start + size);
  std::memcpy(data.data() + start, buf, size);
  return static_cast<int>(size);
}

int fsFsync(const char*, int, fuse_file_info*) {
  auto& fs = st();
  std::unique_lock lock(fs.mu);
  return fs.gate(lock);
}

int fsTruncate(const char* path, off_t size, fuse_file_info*) {
  auto& fs = st();
  std::lock_guard lock(fs.mu);
  auto it = fs.files.find(nameOf(path));
  if (it == fs.files.end()) return -ENOENT;
  it->second.data.resize(static_cast<std::size_t>(size));
  return 0;
}

int fsRename(const char* from, const char* to, unsigned int flags) {
  auto& fs = st();
  const std::string src = nameOf(from);
  const std::string dst = nameOf(to);
  if (dst.empty() || dst.find('/') != std::string::npos) return -EACCES;
  if (flags & RENAME_EXCHANGE) return -EINVAL;
  std::lock_guard lock(fs.mu);
  auto it = fs.files.find(src);
  if (it == fs.files.end()) return -ENOENT;
  if ((flags & RENAME_NOREPLACE) && fs.files.count(dst)) return -EEXIST;
  if (src == dst) return 0;
  auto file = std::move(it->second);
  fs.files.erase(it);
  fs.files[dst] = std::move(file);
  return 0;
}

int fsUnlink(const char* path) {
  auto& fs = st();
  std::lock_guard lock(fs.mu);
  return fs.files.erase(nameOf(path)) ? 0 : -ENOENT;
}

int fsStatfs(const char*, struct statvfs* s) {
  auto& fs = st();
  std::memset(s, 0, sizeof(*s));
  std::lock_guard lock(fs.mu);
  s->f_bsize = kBlockSize;
  s->f_frsize = kBlockSize;
  s->f_blocks = kBlocks;
  s->f_bfree = kBlocks * 9 / 10;
  s->f_bavail = kBlocks * 9 / 10;
  s->f_files = kInodes;
  s->f_ffree = kInodes - fs.files.size();
  s->f_favail = s->f_ffree;
  s->f_namemax = 255;
  return 0;
}

int fsNoop(const char*, fuse_file_info*) { return 0; }
int fsChmod(const char*, mode_t, fuse_file_info*) { return 0; }
int fsChown(const char*, uid_t, gid_t, fuse_file_info*) { return 0; }
int fsUtimens(const char*, const struct timespec[2], fuse_file_info*) { return 0; }

fuse_operations makeOps() {
  fuse_operations ops{};
  ops.init = fsInit;
  ops.getattr = fsGetattr;
  ops.readdir = fsReaddir;
  ops.create = fsCreate;
  ops.open = fsOpen;
  ops.read = fsRead;
  ops.write = fsWrite;
  ops.fsync = fsFsync;
  ops.truncate = fsTruncate;
  ops.rename = fsRename;
  ops.unlink = fsUnlink;
  ops.statfs = fsStatfs;
  ops.flush = fsNoop;
  ops.release = fsNoop;
  ops.chmod = fsChmod;
  ops.chown = fsChown;
  ops.utimens = fsUtimens;
  return ops;
}

// mountinfo escapes blanks and backslashes as \ooo.
std::string unescapeMountField(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(std::strtol(s.substr(i + 1, 3).c_str(), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

struct MountEntry {
  std::string minor;
  std::string mount_point;
  std::string type;
  std::string source;
};

std::vector<MountEntry> mounts() {
  std::vector<MountEntry> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string w; fields >> w;) f.push_back(w);
    std::size_t dash = 0;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (f.size() < 5 || dash + 2 >= f.size()) continue;
    MountEntry e;
    e.minor = f[2].substr(f[2].find(':') + 1);
    e.mount_point = unescapeMountField(f[4]);
    e.type = f[dash + 1];
    e.source = f[dash + 2];
    out.push_back(std::move(e));
  }
  return out;
}

// Detaching with MNT_FORCE first aborts the FUSE connection: every request still
// pending (a caller stuck in write) fails with ENOTCONN, and the serving threads'
// reads of /dev/fuse end with ENODEV.
void forceDetach(const std::string& mount_point, const std::string& conn_id) {
  if (!conn_id.empty()) {
    // fusectl, when mounted, is the documented way to abort a connection.
    std::ofstream abort_file("/sys/fs/fuse/connections/" + conn_id + "/abort");
    if (abort_file) abort_file << "1";
  }
  if (::umount2(mount_point.c_str(), MNT_FORCE | MNT_DETACH) != 0) {
    ::umount2(mount_point.c_str(), MNT_DETACH);
  }
}

// False when `pid` is gone or a zombie. A test process killed while one of its
// threads waits on its own FUSE server stays a zombie: that thread waits for an
// answer nobody will send, until the connection is aborted.
bool processAlive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return false;
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  const char state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

// A test process that crashed cannot unmount: remove the mounts whose process is
// gone (only by syscalls that never wait for the dead server).
void sweepStaleMounts() {
  const std::string prefix = kFsNamePrefix;
  for (const auto& m : mounts()) {
    if (m.type != kFsType || m.source.rfind(prefix, 0) != 0) continue;
    const pid_t pid = static_cast<pid_t>(std::atol(m.source.c_str() + prefix.size()));
    if (pid <= 0 || pid == ::getpid()) continue;
    if (processAlive(pid)) continue;
    forceDetach(m.mount_point, m.minor);
    ::rmdir(m.mount_point.c_str());
  }
}

}  // namespace

HangFs::HangFs() : state_(std::make_unique<State>()) {
  sweepStaleMounts();

  std::string tmpl = "/tmp/vigie-hangfs-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    state_->error = std::string("mkdtemp: ") + std::strerror(errno);
    return;
  }
  state_->path = tmpl;

  const std::string fsname = kFsNamePrefix + std::to_string(::getpid());
  const std::string opts = "fsname=" + fsname + ",subtype=hangfs";
  std::vector<std::string> argv_s = {"vigie-hangfs", "-o", opts};
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  static const fuse_operations ops = makeOps();
  state_->fuse = fuse_new(&args, &ops, sizeof(ops), state_.get());
  fuse_opt_free_args(&args);
  if (state_->fuse == nullptr) {
    state_->error = "fuse_new failed (see stderr)";
    ::rmdir(state_->path.c_str());
    return;
  }
  if (fuse_mount(state_->fuse, state_->path.c_str()) != 0) {
    state_->error = "fuse_mount failed (is /dev/fuse there, and are we root?)";
    fuse_destroy(state_->fuse);
    state_->fuse = nullptr;
    ::rmdir(state_->path.c_str());
    return;
  }
  for (const auto& m : mounts()) {
    if (m.mount_point == state_->path && m.type == kFsType) state_->conn_id = m.minor;
  }

  state_->loop = std::thread([fuse = state_->fuse] {
    fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(cfg, kMaxServingThreads);
    fuse_loop_cfg_set_clone_fd(cfg, 0);
    fuse_loop_mt(fuse, cfg);
    fuse_loop_cfg_destroy(cfg);
  });
  state_->mounted = true;
}

HangFs::~HangFs() { unmount(); }

void HangFs::unmount() {
  if (!state_->fuse) return;
  {
    // Blocked handlers answer EIO: no serving thread stays inside a handler, so the
    // loop can join them all.
    std::lock_guard lock(state_->mu);
    state_->closing = true;
  }
  state_->cv.notify_all();
  fuse_session_exit(fuse_get_session(state_->fuse));
  forceDetach(state_->path, state_->conn_id);
  if (state_->loop.joinable()) state_->loop.join();
  // After the abort this only closes /dev/fuse (libfuse sees POLLERR and skips umount).
  fuse_unmount(state_->fuse);
  fuse_destroy(state_->fuse);
  state_->fuse = nullptr;
  state_->mounted = false;
  ::rmdir(state_->path.c_str());
}

bool HangFs::mounted() const { return state_->mounted; }
const std::string& HangFs::error() const { return state_->error; }
const std::string& HangFs::path() const { return state_->path; }

void HangFs::setMode(Mode mode) {
  {
    std::lock_guard lock(state_->mu);
    state_->mode = mode;
  }
  state_->cv.notify_all();
}

HangFs::Mode HangFs::mode() const {
  std::lock_guard lock(state_->mu);
  return state_->mode;
}

void HangFs::release() { setMode(Mode::normal); }

std::size_t HangFs::blocked() const {
  std::lock_guard lock(state_->mu);
  return state_->blocked;
}

bool HangFs::waitBlocked(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(state_->mu);
  return state_->cv.wait_for(lock, timeout, [&] { return state_->blocked >= n; });
}

std::vector<std::string> HangFs::files() const {
  std::lock_guard lock(state_->mu);
  std::vector<std::string> out;
  for (const auto& [name, file] : state_->files) out.push_back(name);
  return out;
}

}  // namespace vigie::test
