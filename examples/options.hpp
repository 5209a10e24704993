// Range checks of the trainers' options, at parse time: CLI11 validators that refuse NaN, infinities and
// values outside an option's range, so CLI11 reports "--option: ..." and the program exits before any
// work. Checks that need the data (a batch larger than the training set, --l-max below the longest
// sequence) are the functions below, called once the data is loaded; they name both numbers.
#pragma once
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdlib>
#include <exception>
#include <string>

#include <longseq/core/error.hpp>
#include <longseq/data/augment.hpp>
#include <longseq/data/dataset.hpp>

namespace examples {

// A finite number in the interval from `lo` to `hi`, each end open or closed (an infinite end is open).
inline CLI::Validator number_in(double lo, bool lo_open, double hi, bool hi_open) {
  auto describe = [=] {
    auto num = [](double v) {
      std::string s = std::to_string(v);
      s.erase(s.find_last_not_of('0') + 1);
      if (!s.empty() && s.back() == '.') s.pop_back();
      return s;
    };
    if (std::isinf(hi)) return std::string(lo_open ? "> " : ">= ") + num(lo);
    return std::string(lo_open ? "in (" : "in [") + num(lo) + ", " + num(hi) + (hi_open ? ")" : "]");
  };
  return CLI::Validator(
      [=](std::string& in) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(in.c_str(), &end);
        if (in.empty() || end == nullptr || *end != '\0') return "expected a number, got '" + in + "'";
        if (!std::isfinite(v)) return "must be a finite number " + describe() + ", got " + in;
        const bool low_ok = lo_open ? v > lo : v >= lo;
        const bool high_ok = std::isinf(hi) || (hi_open ? v < hi : v <= hi);
        if (!low_ok || !high_ok) return "must be " + describe() + ", got " + in;
        return {};
      },
      describe());
}
inline const double inf = HUGE_VAL;
inline CLI::Validator at_least(double lo) { return number_in(lo, false, inf, true); }  // counts, sizes, rates
inline CLI::Validator positive() { return number_in(0, true, inf, true); }          // learning rates, dt
inline CLI::Validator finite() { return number_in(-inf, true, inf, true); }
inline CLI::Validator probability() { return number_in(0, false, 1, true); }  // dropout, mask ratio: [0, 1)
inline CLI::Validator fraction() { return number_in(0, true, 1, false); }     // a share of a set: (0, 1]

// --augment: a spec data::parse_augment reads, checked when the flags are parsed.
inline CLI::Validator augment_spec() {
  return CLI::Validator(
      [](std::string& in) -> std::string {
        try {
          longseq::data::parse_augment(in);
        } catch (const std::exception& e) {
          return e.what();
        }
        return {};
      },
      "SPEC");
}

// After loading: a training batch must fit the training set (the trainers drop the last partial batch,
// so a larger batch would take no update at all).
inline void check_batch_fits(long batch, long train_examples, const char* flag = "--batch") {
  LONGSEQ_CHECK(batch <= train_examples, flag, " ", batch, " is larger than the training set (", train_examples,
                " examples): no full batch, no update; use a batch of at most ", train_examples);
}

// The longest sequence the data really holds (a reader's max_length is only its cap).
inline longseq::index_t longest_sequence(const longseq::data::Dataset& d) {
  longseq::index_t n = 0;
  for (longseq::index_t i = 0; i < d.size(); ++i) n = std::max(n, d.length(i));
  return n;
}

// Self-pretraining with nothing masked has nothing to denoise.
inline void check_mask_p(double mask_p, const char* flag = "--mask-p") {
  LONGSEQ_CHECK(mask_p > 0 && mask_p < 1, flag, " ", mask_p, ": self-pretraining needs a masking ratio in (0, 1)");
}

}  // namespace examples
