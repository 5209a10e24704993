// Observability: metrics as JSON lines (one object per line, appended) and a progress line with step,
// loss, tokens/s and ETA (rewritten in place on a terminal, one line per report otherwise).
#pragma once
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"

namespace longseq::train {

class MetricsLog {
 public:
  MetricsLog() = default;
  explicit MetricsLog(const std::string& path) : path_(path) {
    if (path.empty()) return;
    out_.open(path, std::ios::app);
    LONGSEQ_CHECK(out_.good(), "cannot open metrics file '", path, "' for appending");
  }
  bool enabled() const { return out_.is_open(); }
  void write(const nlohmann::json& j) {
    if (!out_.is_open()) return;
    out_ << j.dump() << '\n';
    out_.flush();
  }

 private:
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
