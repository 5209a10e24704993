// Stopping a run cleanly on SIGTERM / SIGINT: the first signal only raises a flag that train::fit reads
// between updates (it then writes a resumable last.safetensors and returns FitResult::interrupted); a
// second signal ends the process at once with the default action. StopOnSignal installs the handlers
// for its lifetime and restores the previous ones afterwards.
#pragma once
#include <csignal>
#include <cstring>

#include <unistd.h>

#include "../core/error.hpp"

namespace longseq::train {

namespace detail {
inline volatile std::sig_atomic_t stop_signal = 0;  // the first signal received (0: none)

extern "C" inline void on_stop_signal(int sig) {
  if (stop_signal != 0) {  // the second one: do what the signal would have done
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  stop_signal = sig;
  static constexpr char msg[] = "\nsignal received: stopping after the current update with a checkpoint "
                                "(send it again to stop at once)\n";
  [[maybe_unused]] const ssize_t n = ::write(2, msg, sizeof msg - 1);
}
}  // namespace detail

// The signal that asked the run to stop, or 0.
inline int stop_requested() { return int(detail::stop_signal); }
inline const char* signal_name(int sig) { return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "signal"; }

class StopOnSignal {
 public:
  StopOnSignal() {
    detail::stop_signal = 0;
    struct sigaction sa{};
    sa.sa_handler = detail::on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;  // reads and writes in progress finish; fit looks at the flag between updates
    LONGSEQ_CHECK(::sigaction(SIGTERM, &sa, &old_term_) == 0 && ::sigaction(SIGINT, &sa, &old_int_) == 0,
                  "installing the SIGTERM/SIGINT handlers failed: ", std::strerror(errno));
  }
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;
  ~StopOnSignal() {
    ::sigaction(SIGTERM, &old_term_, nullptr);
    ::sigaction(SIGINT, &old_int_, nullptr);
  }
  // Clears a received signal (tests; a program normally exits after one).
  static void reset() { detail::stop_signal = 0; }

 private:
  struct sigaction old_term_{}, old_int_{};
};

}  // namespace longseq::train
