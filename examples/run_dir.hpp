// The trainers' output folder: owned by one run at a time (train::RunLock), cleared of the partial files
// an interrupted save left, and written atomically; SIGTERM / SIGINT become a clean stop with a
// resumable checkpoint (train::StopOnSignal), reported by the exit status 128 + signal.
#pragma once
#include <cstdio>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <longseq/train/resume.hpp>
#include <longseq/train/run_dir.hpp>
#include <longseq/train/signals.hpp>

namespace examples {

// Holds --out for the lifetime of the run. `prog` prefixes the notes printed to stderr.
class RunFolder {
 public:
  RunFolder(const std::string& dir, const char* prog) : lock_(dir) {
    if (lock_.stale_pid() > 0)
      std::fprintf(stderr, "[%s] %s: took over the lock of pid %ld, which is no longer running\n", prog,
                   dir.c_str(), lock_.stale_pid());
    for (const auto& p : longseq::train::remove_stale_partials(dir))
      std::fprintf(stderr, "[%s] removed '%s', the partial file of an interrupted save\n", prog, p.c_str());
  }

 private:
  longseq::train::RunLock lock_;
};

// Replaces `path` by the JSON document atomically; a failed write throws naming the file.
inline void write_json(const std::filesystem::path& path, const nlohmann::json& j) {
  longseq::train::write_file_atomic(path.string(), j.dump(2) + "\n");
}

// --allow-changed values as config keys ("--lr", "lr", "d-model" -> "lr", "d_model").
inline std::set<std::string> allowed_changes(const std::vector<std::string>& names) {
  std::set<std::string> keys;
  for (const auto& n : names) keys.insert(longseq::train::option_key(n));
  return keys;
}
inline constexpr const char* allow_changed_help =
    "with --resume: options whose value may differ from the interrupted run's (e.g. lr,epochs; all: any)";

// Thrown when a stage stopped on SIGTERM / SIGINT; main reports it and exits with 128 + signal.
struct Interrupted : std::runtime_error {
  int signal;
  explicit Interrupted(int sig, const std::string& what) : std::runtime_error(what), signal(sig) {}
};
inline int report_interrupted(const Interrupted& e, const char* prog) {
  std::fprintf(stderr, "[%s] stopped by %s: %s; continue with the same command and --resume\n", prog,
               longseq::train::signal_name(e.signal), e.what());
  return 128 + e.signal;
}

}  // namespace examples
