// Shapes and strides: a fixed-capacity list of extents (rank <= 6) usable on host and device.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <sstream>
#include <string>

#include "config.hpp"
#include "error.hpp"

namespace longseq {

using index_t = std::int64_t;

struct Shape {
  static constexpr int max_rank = 6;
  std::array<index_t, max_rank> dims{};
  int rank = 0;

  Shape() = default;
  Shape(std::initializer_list<index_t> d) {
    LONGSEQ_CHECK(int(d.size()) <= max_rank, "rank ", d.size(), " exceeds the maximum of ", max_rank);
    for (index_t v : d) {
      LONGSEQ_CHECK(v >= 0, "negative extent ", v, " in shape");
      dims[rank++] = v;
    }
  }
  LONGSEQ_HD index_t operator[](int i) const { return dims[i]; }
  LONGSEQ_HD index_t& operator[](int i) { return dims[i]; }
  LONGSEQ_HD index_t numel() const {
    index_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dims[i];
    return n;
  }
  // Negative indices count from the back, as in Python.
  index_t dim(int i) const {
    int j = i < 0 ? rank + i : i;
    LONGSEQ_CHECK(j >= 0 && j < rank, "dimension ", i, " out of range for rank ", rank);
    return dims[j];
  }
  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank != b.rank) return false;
    for (int i = 0; i < a.rank; ++i)
      if (a.dims[i] != b.dims[i]) return false;
    return true;
  }
  std::string str() const {
    std::ostringstream os;
    os << "(";
    for (int i = 0; i < rank; ++i) os << (i ? ", " : "") << dims[i];
    os << ")";
    return os.str();
  }
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }
};

// Row-major (C order) strides in elements.
inline Shape contiguous_strides(const Shape& s) {
  Shape st;
  st.rank = s.rank;
  index_t acc = 1;
  for (int i = s.rank - 1; i >= 0; --i) {
    st.dims[i] = acc;
    acc *= s.dims[i];
  }
  return st;
}

}  // namespace longseq
