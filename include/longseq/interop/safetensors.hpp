// Safetensors files: whole-file reader and atomic writer (8-byte little-endian header size, JSON header,
// then one contiguous data block), with strict validation and dtype conversion on read.
#pragma once
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#if !__has_include(<nlohmann/json.hpp>)
#error "longseq/interop/safetensors.hpp needs nlohmann-json (Debian: apt-get install nlohmann-json3-dev)"
#endif
#include <nlohmann/json.hpp>

#include "../core/dtype.hpp"
#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace longseq::interop {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; big-endian hosts are not supported");

struct TensorRecord {
  std::string name;
  DType dtype;
  Shape shape;
  std::vector<std::byte> bytes;
};

namespace detail {

// Names used in the safetensors header for the dtypes longseq can store.
inline std::string_view safetensors_dtype_name(DType d) {
  switch (d) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
    default: break;
  }
  LONGSEQ_FAIL("dtype ", dtype_name(d), " cannot be stored in a safetensors file");
}
inline bool safetensors_dtype_from_name(std::string_view s, DType& out) {
  static constexpr std::pair<std::string_view, DType> table[] = {
      {"F32", DType::f32}, {"F64", DType::f64}, {"F16", DType::f16}, {"BF16", DType::bf16},
      {"I32", DType::i32}, {"I64", DType::i64}, {"U8", DType::u8}};
  for (auto [n, d] : table)
    if (n == s) { out = d; return true; }
  return false;
}

// Parses a safetensors JSON header with nlohmann-json. The callback keeps the top-level keys in file
// order (tensors are returned in the order the file lists them) and refuses duplicate keys, which the
// format forbids and nlohmann-json would otherwise silently merge; parse errors become longseq::Error
// naming the file and the byte.
struct ParsedHeader {
  nlohmann::json root;
  std::vector<std::string> order;  // top-level keys in file order
};

inline ParsedHeader parse_header(std::string_view text, const std::string& file) {
  using nlohmann::json;
  constexpr int max_depth = 64;  // a safetensors header nests 3 levels; anything deeper is not one
  ParsedHeader out;
  std::vector<std::set<std::string, std::less<>>> open_keys;  // keys seen so far in each open object
  json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) -> bool {
    if (ev == json::parse_event_t::object_start || ev == json::parse_event_t::array_start) {
      LONGSEQ_CHECK(depth < max_depth, "safetensors file '", file, "': invalid JSON header: nesting deeper than ",
                    max_depth, " levels");
      if (ev == json::parse_event_t::object_start) open_keys.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      open_keys.pop_back();
    } else if (ev == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      LONGSEQ_CHECK(open_keys.back().insert(key).second, "safetensors file '", file,
                    "': invalid JSON header: duplicate key '", key, "'");
      if (depth == 1) out.order.push_back(key);
    }
    return true;
  };
  auto message = [](const json::exception& e) {
    std::string what = e.what();
    if (auto k = what.find("] "); k != std::string::npos) what.erase(0, k + 2);  // drop "[json.exception...]"
    return what;
  };
  try {
    out.root = json::parse(text.begin(), text.end(), cb);
  } catch (const json::parse_error& e) {
    const std::size_t at = e.byte > 0 ? e.byte - 1 : 0;  // nlohmann counts from 1
    LONGSEQ_FAIL("safetensors file '", file, "': invalid JSON header at byte ", 8 + at, " (header offset ", at,
                 "): ", message(e));
  } catch (const json::exception& e) {
    // The parser also throws out_of_range for a number beyond double's range (e.g. 1e999).
    LONGSEQ_FAIL("safetensors file '", file, "': invalid JSON header: ", message(e));
  }
  return out;
}

// A JSON number as a non-negative integer no larger than `limit` (false for anything else).
inline bool json_count(const nlohmann::json& v, std::uint64_t limit, std::uint64_t& out) {
  if (v.is_number_unsigned()) out = v.get<std::uint64_t>();
  else if (v.is_number_integer() && v.get<std::int64_t>() >= 0) out = std::uint64_t(v.get<std::int64_t>());
  else return false;
  return out <= limit;
}

// Reads element i of a little-endian buffer of dtype d as U. A floating value converted to an integer
// type must fit it after truncation (anything else, NaN included, is undefined behaviour in C++), so it
// is refused with the tensor and element named.
template <class U>
U read_as(const std::byte* p, DType d, index_t i, std::string_view name) {
  auto load = [&](auto tag) {
    using S = decltype(tag);
    S v;
    std::memcpy(&v, p + i * index_t(sizeof(S)), sizeof(S));
    return v;
  };
  auto convert = [&](auto v) -> U {
    if constexpr (std::is_integral_v<U> && std::is_floating_point_v<decltype(v)>) {
      const double hi = std::ldexp(1.0, std::numeric_limits<U>::digits), lo = std::is_signed_v<U> ? -hi : 0.0;
      const double t = std::trunc(double(v));
      LONGSEQ_CHECK(t >= lo && t < hi, "safetensors: tensor '", name, "' element ", i, " = ", v, " (", dtype_name(d),
                    ") does not fit ", dtype_name(dtype_v<U>));
    }
    return static_cast<U>(v);
  };
  switch (d) {
    case DType::f32: return convert(load(float{}));
    case DType::f64: return convert(load(double{}));
    case DType::f16: return convert(float(load(half{})));
    case DType::bf16: return convert(float(load(bf16{})));
    case DType::i32: return convert(load(std::int32_t{}));
    case DType::i64: return convert(load(std::int64_t{}));
    case DType::u8: return convert(load(std::uint8_t{}));
    default: break;
  }
  LONGSEQ_FAIL("unsupported dtype ", dtype_name(d));
}

}  // namespace detail

class Safetensors {
 public:
  // Largest JSON header accepted (the reference implementation's limit).
  static constexpr std::uint64_t max_header_bytes = 100'000'000;

  std::map<std::string, std::string> metadata;
  std::vector<TensorRecord> tensors;

  static Safetensors load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    LONGSEQ_CHECK(in.good(), "cannot open safetensors file '", path, "': ", std::strerror(errno));
    // A folder opens like a file but reads nothing: say so instead of parsing an unread length.
    LONGSEQ_CHECK(!std::filesystem::is_directory(path), "safetensors file '", path, "' is a folder, not a file");
    in.seekg(0, std::ios::end);
    const std::uint64_t file_size = std::uint64_t(in.tellg());
    in.seekg(0);
    LONGSEQ_CHECK(file_size >= 8, "safetensors file '", path, "' is truncated: ", file_size,
                  " bytes, expected at least the 8-byte header length");
    unsigned char lenbuf[8];
    LONGSEQ_CHECK(in.read(reinterpret_cast<char*>(lenbuf), 8), "safetensors file '", path,
                  "': reading the 8-byte header length failed");
    std::uint64_t n = 0;
    for (int k = 7; k >= 0; --k) n = (n << 8) | lenbuf[k];
    LONGSEQ_CHECK(n >= 2 && n <= max_header_bytes, "safetensors file '", path, "': header length ", n,
                  " at bytes [0, 8) is out of bounds (expected 2..", max_header_bytes, ")");
    LONGSEQ_CHECK(8 + n <= file_size, "safetensors file '", path, "' is truncated: header claims bytes [8, ",
                  8 + n, ") but the file has ", file_size, " bytes");
    std::string header(std::size_t(n), '\0');
    in.read(header.data(), std::streamsize(n));
    LONGSEQ_CHECK(in.good(), "safetensors file '", path, "': reading the header failed");
    const std::uint64_t data_begin = 8 + n, data_size = file_size - data_begin;

    const detail::ParsedHeader parsed = detail::parse_header(header, path);
    const nlohmann::json& root = parsed.root;
    LONGSEQ_CHECK(root.is_object(), "safetensors file '", path, "': the JSON header must be an object, not ",
                  root.type_name());

    Safetensors st;
    struct Span { std::uint64_t b, e; std::size_t idx; };
    std::vector<Span> spans;
    for (const std::string& name : parsed.order) {
      const nlohmann::json& v = root.at(name);
      if (name == "__metadata__") {
        LONGSEQ_CHECK(v.is_object(), "safetensors file '", path, "': __metadata__ must be an object of strings");
        for (const auto& [k, mv] : v.items()) {
          LONGSEQ_CHECK(mv.is_string(), "safetensors file '", path, "': metadata entry '", k, "' is not a string");
          st.metadata[k] = mv.get<std::string>();
        }
        continue;
      }
      auto where = [&] { return "safetensors file '" + path + "': tensor '" + name + "'"; };
      LONGSEQ_CHECK(v.is_object(), where(), " must be described by an object");
      for (const auto& [k, f] : v.items())
        LONGSEQ_CHECK(k == "dtype" || k == "shape" || k == "data_offsets", where(), " has an unknown field '", k, "'");
      const auto dt = v.find("dtype"), shape = v.find("shape"), offs = v.find("data_offsets");
      LONGSEQ_CHECK(dt != v.end() && dt->is_string(), where(), " lacks a string 'dtype'");
      LONGSEQ_CHECK(shape != v.end() && shape->is_array(), where(), " lacks a 'shape' array");
      LONGSEQ_CHECK(offs != v.end() && offs->is_array() && offs->size() == 2, where(),
                    " lacks 'data_offsets' [begin, end]");
      TensorRecord rec;
      rec.name = name;
      const std::string& dts = dt->get_ref<const std::string&>();
      LONGSEQ_CHECK(detail::safetensors_dtype_from_name(dts, rec.dtype), where(), " has dtype '", dts,
                    "', expected one of F32, F64, F16, BF16, I32, I64, U8");
      LONGSEQ_CHECK(shape->size() <= std::size_t(Shape::max_rank), where(), " has rank ", shape->size(),
                    ", more than the supported ", Shape::max_rank);
      rec.shape.rank = int(shape->size());
      // Element counts stay below 2^62 so that numel times a dtype size (at most 8) cannot overflow.
      constexpr std::uint64_t max_count = std::uint64_t(1) << 62;
      std::uint64_t numel = 1;
      for (std::size_t k = 0; k < shape->size(); ++k) {
        std::uint64_t d = 0;
        LONGSEQ_CHECK(detail::json_count((*shape)[k], max_count, d), where(),
                      " has a shape entry that is not a non-negative integer");
        rec.shape.dims[k] = index_t(d);
        LONGSEQ_CHECK(d == 0 || numel <= max_count / d, where(), " has an overflowing shape");
        numel *= d;
      }
      std::uint64_t ob[2];
      for (std::size_t k = 0; k < 2; ++k)
        LONGSEQ_CHECK(detail::json_count((*offs)[k], ~std::uint64_t(0), ob[k]), where(),
                      " has a data offset that is not a non-negative integer");
      const std::uint64_t b = ob[0], e = ob[1];
      LONGSEQ_CHECK(b <= e && e <= data_size, where(), " has data bytes [", b, ", ", e,
                    ") (file bytes [", data_begin + b, ", ", data_begin + e, ")) outside the data block of ",
                    data_size, " bytes");
      const std::uint64_t want = numel * dtype_size(rec.dtype);
      LONGSEQ_CHECK(e - b == want, where(), " with dtype ", dts, " and shape ", rec.shape, " needs ", want,
                    " bytes but data bytes [", b, ", ", e, ") hold ", e - b);
      spans.push_back({b, e, st.tensors.size()});
      st.tensors.push_back(std::move(rec));
    }
    // The tensors must tile the data block exactly: sorted by offset, no gaps, no overlaps.
    std::vector<Span> sorted = spans;
    std::sort(sorted.begin(), sorted.end(), [](const Span& x, const Span& y) {
      return x.b != y.b ? x.b < y.b : x.e < y.e;
    });
    std::uint64_t at = 0;
    for (const auto& s : sorted) {
      LONGSEQ_CHECK(s.b == at, "safetensors file '", path, "': tensor '", st.tensors[s.idx].name,
                    "' starts at data byte ", s.b, " but the previous tensor ends at ", at,
                    " (offsets must be contiguous, without gaps or overlaps)");
      at = s.e;
    }
    LONGSEQ_CHECK(at == data_size, "safetensors file '", path, "': tensors cover data bytes [0, ", at,
                  ") but the data block has ", data_size, " bytes (file bytes [", data_begin, ", ", file_size,
                  "))");
    for (const auto& s : spans) {
      auto& rec = st.tensors[s.idx];
      rec.bytes.resize(std::size_t(s.e - s.b));
      in.seekg(std::streamoff(data_begin + s.b));
      in.read(reinterpret_cast<char*>(rec.bytes.data()), std::streamsize(s.e - s.b));
      LONGSEQ_CHECK(in.good() || s.e == s.b, "safetensors file '", path, "': reading tensor '", rec.name,
                    "' at file bytes [", data_begin + s.b, ", ", data_begin + s.e, ") failed");
    }
    return st;
  }

  // Serializes to bytes (header padded with spaces to a multiple of 8, as the reference writer does).
  std::string serialize() const {
    using nlohmann::json;
    // Entries are dumped one at a time and joined in order (metadata first, then the tensors as listed),
    // which keeps the order without an ordered object's linear key lookups.
    std::string h = "{";
    auto entry = [&](const std::string& key, const auto& value) {
      try {
        if (h.size() > 1) h += ',';
        h += json(key).dump();
        h += ':';
        h += value.dump();  // compact, as the reference writer's
      } catch (const json::type_error& e) {
        // dump()'s only failure: a string that is not UTF-8, which every reader would refuse.
        LONGSEQ_FAIL("safetensors: cannot write entry '", key, "': it holds a string that is not valid UTF-8 (",
                     e.what(), ")");
      }
    };
    if (!metadata.empty()) entry("__metadata__", json(metadata));
    std::set<std::string_view> names;
    std::uint64_t off = 0;
    for (const auto& t : tensors) {
      LONGSEQ_CHECK(t.name != "__metadata__", "a tensor may not be named '__metadata__'");
      LONGSEQ_CHECK(names.insert(t.name).second, "two tensors are named '", t.name, "'");
      LONGSEQ_CHECK(t.bytes.size() == std::size_t(t.shape.numel()) * dtype_size(t.dtype), "tensor '", t.name,
                    "' holds ", t.bytes.size(), " bytes, expected ", t.shape.numel() * index_t(dtype_size(t.dtype)),
                    " for shape ", t.shape);
      nlohmann::ordered_json d;  // dtype, shape, data_offsets: the reference writer's order
      d["dtype"] = detail::safetensors_dtype_name(t.dtype);
      d["shape"] = std::vector<index_t>(t.shape.dims.begin(), t.shape.dims.begin() + t.shape.rank);
      d["data_offsets"] = {off, off + t.bytes.size()};
      off += t.bytes.size();
      entry(t.name, d);
    }
    h += '}';
    while (h.size() % 8) h += ' ';
    std::string out;
    out.reserve(8 + h.size() + off);
    std::uint64_t n = h.size();
    for (int k = 0; k < 8; ++k) out += char((n >> (8 * k)) & 0xff);
    out += h;
    for (const auto& t : tensors) out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
    return out;
  }

  // Atomic: the data goes to a temporary file in the same directory, is fsync'ed, then renamed over path,
  // so a crash leaves either the old file or the new one, never a torn one.
  void save(const std::string& path) const {
    const std::string bytes = serialize();
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    LONGSEQ_CHECK(fd >= 0, "cannot create '", tmp, "' to save safetensors file '", path, "': ",
                  std::strerror(errno));
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        LONGSEQ_FAIL("writing safetensors file '", tmp, "' failed at byte ", done, ": ", std::strerror(err));
      }
      done += std::size_t(w);
    }
    if (::fsync(fd) != 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      LONGSEQ_FAIL("fsync of '", tmp, "' failed: ", std::strerror(err));
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      LONGSEQ_FAIL("renaming '", tmp, "' to '", path, "' failed: ", std::strerror(err));
    }
    // Persist the rename itself.
    std::string dir = path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
    if (dir.empty()) dir = path.find('/') == 0 ? "/" : ".";
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

  bool contains(std::string_view name) const { return find(name) != nullptr; }
  const TensorRecord* find(std::string_view name) const {
    for (const auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  const TensorRecord& record(std::string_view name) const {
    const TensorRecord* r = find(name);
    LONGSEQ_CHECK(r != nullptr, "safetensors: no tensor named '", name, "'");
    return *r;
  }

  // Reads a tensor converting its stored dtype to T (F16/BF16 go through float).
  template <class T>
  Tensor<T> get(std::string_view name) const {
    const TensorRecord& r = record(name);
    LONGSEQ_CHECK(r.bytes.size() == std::size_t(r.shape.numel()) * dtype_size(r.dtype), "safetensors: tensor '",
                  name, "' holds ", r.bytes.size(), " bytes, inconsistent with dtype ", dtype_name(r.dtype),
                  " and shape ", r.shape);
    Tensor<T> out(r.shape);
    const index_t n = r.shape.numel();
    if (r.dtype == dtype_v<T>) {
      if (n) std::memcpy(out.data(), r.bytes.data(), r.bytes.size());
      return out;
    }
    for (index_t i = 0; i < n; ++i) {
      if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bf16>)
        out[i] = T(detail::read_as<float>(r.bytes.data(), r.dtype, i, name));
      else
        out[i] = detail::read_as<T>(r.bytes.data(), r.dtype, i, name);
    }
    return out;
  }

  // Adds or replaces a tensor with a copy of t (any strides), stored with T's dtype.
  template <class T>
  void put(std::string name, TensorView<const T> t) {
    static_assert(!std::is_same_v<T, std::complex<float>> && !std::is_same_v<T, std::complex<double>>,
                  "safetensors cannot hold complex tensors; store real and imaginary parts separately");
    TensorRecord rec;
    rec.name = std::move(name);
    rec.dtype = dtype_v<T>;
    rec.shape = t.shape;
    const index_t n = t.numel();
    rec.bytes.resize(std::size_t(n) * sizeof(T));
    if (t.is_contiguous()) {
      if (n) std::memcpy(rec.bytes.data(), t.data, std::size_t(n) * sizeof(T));
    } else {
      std::vector<index_t> idx(std::size_t(t.rank()), 0);
      for (index_t i = 0; i < n; ++i) {
        index_t off = 0;
        for (int k = 0; k < t.rank(); ++k) off += idx[std::size_t(k)] * t.strides[k];
        std::memcpy(rec.bytes.data() + i * index_t(sizeof(T)), t.data + off, sizeof(T));
        for (int k = t.rank() - 1; k >= 0; --k) {
          if (++idx[std::size_t(k)] < t.shape[k]) break;
          idx[std::size_t(k)] = 0;
        }
      }
    }
    for (auto& r : tensors)
      if (r.name == rec.name) { r = std::move(rec); return; }
    tensors.push_back(std::move(rec));
  }
  template <class T>
  void put(std::string name, TensorView<T> t) requires(!std::is_const_v<T>) {
    put<T>(std::move(name), TensorView<const T>(t));
  }
};

}  // namespace longseq::interop
