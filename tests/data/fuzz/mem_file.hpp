// An in-memory file for harnesses whose reader takes a path: each input is written to a memfd and
// read back through /proc/self/fd, so a long fuzzing run does no disk I/O and leaves no files behind.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <sys/mman.h>
#include <unistd.h>

namespace longseq::fuzz {

class MemFile {
 public:
  MemFile() : fd_(::memfd_create("longseq-fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  ~MemFile() { ::close(fd_); }

  // Replaces the contents by data[0, size) and returns the path to open.
  const std::string& write(const void* data, std::size_t size) {
    if (::ftruncate(fd_, 0) != 0) std::abort();
    std::size_t done = 0;
    while (done < size) {
      const ssize_t w = ::pwrite(fd_, static_cast<const char*>(data) + done, size - done, off_t(done));
      if (w <= 0) std::abort();  // a harness that cannot store its input must not report "no crash"
      done += std::size_t(w);
    }
    return path_;
  }

 private:
  int fd_;
  std::string path_;
};

}  // namespace longseq::fuzz
