// Observability: metrics as JSON lines (one object per line, appended, every write checked) and a
// progress line with step, loss, tokens/s and ETA (rewritten in place on a terminal, one line per
// report otherwise).
#pragma once
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "run_dir.hpp"

namespace longseq::train {

// Every write is checked: a full disk or a vanished folder throws an Error naming the file, so a run
// never ends "successfully" with a truncated log.
class MetricsLog {
 public:
  MetricsLog() = default;
  // fresh: start an empty log (a new run); otherwise append (a resumed one).
  explicit MetricsLog(const std::string& path, bool fresh = false) : path_(path) {
    if (path.empty()) return;
    open(fresh ? std::ios::trunc : std::ios::app);
  }
  bool enabled() const { return out_.is_open(); }
  const std::string& path() const { return path_; }
  void write(const nlohmann::json& j) {
    if (!out_.is_open()) return;
    out_ << j.dump() << '\n';
    out_.flush();
    LONGSEQ_CHECK(out_.good(), "writing metrics file '", path_, "' failed: ", std::strerror(errno));
  }
  // A resumed run continues after its checkpoint: records of `run` written after it (steps beyond
  // `step`, epochs from `epoch` on, which the resumed run writes again) and a line torn by a kill are
  // dropped, so the log reads as one uninterrupted run. The file is replaced atomically.
  void rewind(const std::string& run, long step, long epoch) {
    if (!out_.is_open()) return;
    out_.close();
    std::ifstream in(path_);
    std::string line, kept;
    while (std::getline(in, line)) {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object()) continue;
      if (j.value("run", std::string()) == run) {
        if (j.contains("step") && j["step"].is_number() && j["step"].get<long>() > step) continue;
        if (j.value("event", std::string()) == "epoch" && j.contains("epoch") && j["epoch"].get<long>() >= epoch)
          continue;
      }
      kept += line;
      kept += '\n';
    }
    LONGSEQ_CHECK(!in.bad(), "reading metrics file '", path_, "' failed: ", std::strerror(errno));
    in.close();
    write_file_atomic(path_, kept);
    open(std::ios::app);
  }

 private:
  void open(std::ios::openmode mode) {
    out_.open(path_, std::ios::out | mode);
    LONGSEQ_CHECK(out_.good(), "cannot open metrics file '", path_, "' for writing: ", std::strerror(errno));
  }
  std::string path_;
  std::ofstream out_;
};

inline std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  const long s = long(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%lds", s);
  return buf;
}

class Progress {
 public:
  explicit Progress(bool enabled = true) : enabled_(enabled), tty_(::isatty(2) == 1) {}
  void line(const std::string& run, long step, long total, double loss, double lr, double tokens_per_s,
            double eta_s) {
    if (!enabled_) return;
    std::fprintf(stderr, "%s[%s] step %ld/%ld  loss %.4f  lr %.2e  %.0f tok/s  ETA %s%s", tty_ ? "\r\033[K" : "",
                 run.c_str(), step, total, loss, lr, tokens_per_s, format_duration(eta_s).c_str(), tty_ ? "" : "\n");
    std::fflush(stderr);
    pending_ = tty_;
  }
  // Ends an in-place line before other output.
  void flush() {
    if (pending_) std::fputc('\n', stderr);
    pending_ = false;
  }

 private:
  bool enabled_, tty_, pending_ = false;
};

}  // namespace longseq::train
