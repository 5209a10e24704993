// A run's output folder: one run at a time owns it (a lock file naming the owner's pid), files that
// replace others are written atomically with every write checked, and partial files an interrupted save
// left behind (`<file>.tmp.<pid>`) are removed when the next run takes the folder.
#pragma once
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/error.hpp"

namespace longseq::train {

namespace detail {
// Whether a process with this id exists (EPERM: it exists but belongs to someone else).
inline bool process_alive(long pid) {
  if (pid <= 0) return false;
  return ::kill(pid_t(pid), 0) == 0 || errno == EPERM;
}
// Writes all of `bytes` to fd, retrying short writes; returns 0 or the errno of the failure.
inline int write_all(int fd, std::string_view bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : EIO;
    done += std::size_t(w);
  }
  return 0;
}
inline void fsync_parent(const std::string& path) {
  auto dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}
// The pid of a partial file's name `<file>.tmp.<pid>`, or -1 when the name has another form.
inline long partial_pid(const std::string& name) {
  const auto at = name.rfind(".tmp.");
  if (at == std::string::npos || at == 0 || at + 5 >= name.size()) return -1;
  long pid = -1;
  const char* b = name.data() + at + 5;
  const char* e = name.data() + name.size();
  auto [p, ec] = std::from_chars(b, e, pid);
  return ec == std::errc() && p == e ? pid : -1;
}
}  // namespace detail

// Replaces `path` by `bytes` atomically: a temporary file beside it (`<path>.tmp.<pid>`), every write
// checked, fsync, rename. A failure (a full disk, a missing folder, a directory in the way) throws an
// Error naming `path`, and the previous file, if any, stays as it was.
inline void write_file_atomic(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  LONGSEQ_CHECK(fd >= 0, "cannot write '", path, "': creating '", tmp, "' failed: ", std::strerror(errno));
  int err = detail::write_all(fd, bytes);
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    LONGSEQ_FAIL("writing '", path, "' failed: ", std::strerror(err), " (the previous file, if any, is unchanged)");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    LONGSEQ_FAIL("writing '", path, "' failed: renaming '", tmp, "' over it: ", std::strerror(err));
  }
  detail::fsync_parent(path);
}

// Removes the partial files `<name>.tmp.<pid>` under `dir` (and its subfolders) whose writer is no
// longer running: what a save interrupted by a crash or kill -9 leaves. Returns the removed paths.
inline std::vector<std::string> remove_stale_partials(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return removed;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const long pid = detail::partial_pid(it->path().filename().string());
    if (pid <= 0 || detail::process_alive(pid)) continue;
    if (std::filesystem::remove(it->path(), ec)) removed.push_back(it->path().string());
  }
  return removed;
}

// Ownership of an output folder for the lifetime of this object: `<dir>/run.lock` holds the owner's
// pid under an exclusive flock. The kernel drops the flock when its holder dies (kill -9 included), so
// a lock file left by a dead run is taken over; a live owner makes the constructor throw, naming the
// folder and the pid. The lock file is removed again on release.
class RunLock {
 public:
  RunLock() = default;
  explicit RunLock(const std::string& dir) { acquire(dir); }
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  RunLock(RunLock&& o) noexcept : path_(std::move(o.path_)), fd_(o.fd_), stale_pid_(o.stale_pid_) { o.fd_ = -1; }
  RunLock& operator=(RunLock&& o) noexcept {
    if (this != &o) {
      release();
      path_ = std::move(o.path_);
      fd_ = o.fd_;
      stale_pid_ = o.stale_pid_;
      o.fd_ = -1;
    }
    return *this;
  }
  ~RunLock() { release(); }

  static constexpr const char* file_name = "run.lock";
  bool held() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }
  // The pid a taken-over lock file named (a run that died holding the folder), or -1.
  long stale_pid() const { return stale_pid_; }

  void acquire(const std::string& dir) {
    release();
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    LONGSEQ_CHECK(std::filesystem::is_directory(dir), "output folder '", dir, "' cannot be created",
                  ec ? ": " + ec.message() : std::string());
    path_ = (std::filesystem::path(dir) / file_name).string();
    // A lock file unlinked by its releasing owner between our open and flock is a dead inode: retry.
    for (int attempt = 0; attempt < 8; ++attempt) {
      const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      LONGSEQ_CHECK(fd >= 0, "cannot create lock file '", path_, "': ", std::strerror(errno));
      if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        const long owner = read_pid(fd);
        ::close(fd);
        LONGSEQ_CHECK(err == EWOULDBLOCK, "cannot lock '", path_, "': ", std::strerror(err));
        LONGSEQ_FAIL("output folder '", dir, "' is in use by another run (pid ",
                     owner > 0 ? std::to_string(owner) : std::string("unknown"), ", lock file '", path_,
                     "'); wait for it to finish or choose another output folder");
      }
      struct stat by_fd{}, by_path{};
      if (::fstat(fd, &by_fd) != 0 || ::stat(path_.c_str(), &by_path) != 0 || by_fd.st_ino != by_path.st_ino ||
          by_fd.st_dev != by_path.st_dev) {
        ::close(fd);
        continue;
      }
      const long previous = read_pid(fd);
      stale_pid_ = previous > 0 && previous != long(::getpid()) ? previous : -1;
      const std::string me = std::to_string(::getpid()) + "\n";
      int err = ::ftruncate(fd, 0) == 0 ? 0 : errno;
      if (err == 0 && ::lseek(fd, 0, SEEK_SET) != 0) err = errno;
      if (err == 0) err = detail::write_all(fd, me);
      if (err != 0) {
        ::close(fd);
        LONGSEQ_FAIL("cannot write lock file '", path_, "': ", std::strerror(err));
      }
      fd_ = fd;
      return;
    }
    LONGSEQ_FAIL("cannot lock '", path_, "': the lock file keeps being replaced by another process");
  }

  void release() {
    if (fd_ < 0) return;
    ::unlink(path_.c_str());  // while still holding the flock, so no one else holds this inode
    ::close(fd_);
    fd_ = -1;
  }

 private:
  static long read_pid(int fd) {
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return -1;
    long pid = -1;
    const char* end = buf + n;
    while (end > buf && (end[-1] == '\n' || end[-1] == ' ')) --end;
    auto [p, ec] = std::from_chars(buf, end, pid);
    return ec == std::errc() && p == end ? pid : -1;
  }

  std::string path_;
  int fd_ = -1;
  long stale_pid_ = -1;
};

}  // namespace longseq::train
