// Safetensors files: whole-file reader and atomic writer (8-byte little-endian header size, JSON header,
// then one contiguous data block), with strict validation and dtype conversion on read.
#pragma once
#include <algorithm>
#include <bit>
#include <cerrno>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

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

// A minimal JSON value: enough for safetensors headers (objects, arrays, strings, integers).
struct Json {
  enum class Kind { null, boolean, number, string, array, object } kind = Kind::null;
  bool b = false;
  double num = 0;
  bool integral = false;
  std::int64_t integer = 0;
  std::string str;
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;  // in file order
};

class JsonParser {
 public:
  JsonParser(std::string_view text, const std::string& file) : s_(text), file_(file) {}
  Json parse() {
    skip_ws();
    Json v = value(0);
    skip_ws();
    if (i_ != s_.size()) fail("unexpected trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    LONGSEQ_FAIL("safetensors file '", file_, "': invalid JSON header at byte ", 8 + i_,
                 " (header offset ", i_, "): ", what);
  }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  Json value(int depth) {
    if (depth > 64) fail("nesting deeper than 64 levels");
    Json v;
    char c = peek();
    if (c == '{') {
      v.kind = Json::Kind::object;
      ++i_;
      skip_ws();
      if (peek() == '}') { ++i_; return v; }
      for (;;) {
        skip_ws();
        if (peek() != '"') fail("expected a string key");
        std::string key = string();
        for (const auto& m : v.members)
          if (m.first == key) fail("duplicate key '" + key + "'");
        skip_ws();
        expect(':');
        skip_ws();
        v.members.emplace_back(std::move(key), value(depth + 1));
        skip_ws();
        if (peek() == ',') { ++i_; continue; }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Json::Kind::array;
      ++i_;
      skip_ws();
      if (peek() == ']') { ++i_; return v; }
      for (;;) {
        skip_ws();
        v.items.push_back(value(depth + 1));
        skip_ws();
        if (peek() == ',') { ++i_; continue; }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = Json::Kind::string;
      v.str = string();
      return v;
    }
    if (s_.substr(i_, 4) == "true") { i_ += 4; v.kind = Json::Kind::boolean; v.b = true; return v; }
    if (s_.substr(i_, 5) == "false") { i_ += 5; v.kind = Json::Kind::boolean; return v; }
    if (s_.substr(i_, 4) == "null") { i_ += 4; return v; }
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    fail(c ? std::string("unexpected character '") + c + "'" : std::string("unexpected end of header"));
  }
  Json number() {
    Json v;
    v.kind = Json::Kind::number;
    std::size_t start = i_;
    if (peek() == '-') ++i_;
    if (!(peek() >= '0' && peek() <= '9')) fail("malformed number");
    while (peek() >= '0' && peek() <= '9') ++i_;
    bool frac = false;
    if (peek() == '.') { frac = true; ++i_; while (peek() >= '0' && peek() <= '9') ++i_; }
    if (peek() == 'e' || peek() == 'E') {
      frac = true;
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      while (peek() >= '0' && peek() <= '9') ++i_;
    }
    std::string tok(s_.substr(start, i_ - start));
    v.num = std::strtod(tok.c_str(), nullptr);
    if (!frac) {
      errno = 0;
      long long x = std::strtoll(tok.c_str(), nullptr, 10);
      if (errno == ERANGE) fail("integer " + tok + " out of range");
      v.integral = true;
      v.integer = x;
    }
    return v;
  }
  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) fail("unterminated string");
      char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') { out += c; continue; }
      if (i_ >= s_.size()) fail("unterminated escape");
      char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {  // surrogate pair
            if (s_.substr(i_, 2) != "\\u") fail("unpaired surrogate");
            i_ += 2;
            std::uint32_t lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(cp, out);
          break;
        }
        default: fail(std::string("bad escape '\\") + e + "'");
      }
    }
  }
  std::uint32_t hex4() {
    if (i_ + 4 > s_.size()) fail("short \\u escape");
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= std::uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') v |= std::uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= std::uint32_t(c - 'A' + 10);
      else fail("bad hex digit in \\u escape");
    }
    return v;
  }
  static void utf8(std::uint32_t cp, std::string& out) {
    if (cp < 0x80) out += char(cp);
    else if (cp < 0x800) { out += char(0xC0 | (cp >> 6)); out += char(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18)); out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F));
    }
  }
  std::string_view s_;
  const std::string& file_;
  std::size_t i_ = 0;
};

inline void json_escape(std::string_view s, std::string& out) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

// Reads element i of a little-endian buffer of dtype d as U.
template <class U>
U read_as(const std::byte* p, DType d, index_t i) {
  auto load = [&](auto tag) {
    using S = decltype(tag);
    S v;
    std::memcpy(&v, p + i * index_t(sizeof(S)), sizeof(S));
    return v;
  };
  switch (d) {
    case DType::f32: return static_cast<U>(load(float{}));
    case DType::f64: return static_cast<U>(load(double{}));
    case DType::f16: return static_cast<U>(float(load(half{})));
    case DType::bf16: return static_cast<U>(float(load(bf16{})));
    case DType::i32: return static_cast<U>(load(std::int32_t{}));
    case DType::i64: return static_cast<U>(load(std::int64_t{}));
    case DType::u8: return static_cast<U>(load(std::uint8_t{}));
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
    in.seekg(0, std::ios::end);
    const std::uint64_t file_size = std::uint64_t(in.tellg());
    in.seekg(0);
    LONGSEQ_CHECK(file_size >= 8, "safetensors file '", path, "' is truncated: ", file_size,
                  " bytes, expected at least the 8-byte header length");
    unsigned char lenbuf[8];
    in.read(reinterpret_cast<char*>(lenbuf), 8);
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

    detail::Json root = detail::JsonParser(header, path).parse();
    LONGSEQ_CHECK(root.kind == detail::Json::Kind::object, "safetensors file '", path,
                  "': the JSON header must be an object");

    Safetensors st;
    struct Span { std::uint64_t b, e; std::size_t idx; };
    std::vector<Span> spans;
    for (auto& [name, v] : root.members) {
      if (name == "__metadata__") {
        LONGSEQ_CHECK(v.kind == detail::Json::Kind::object, "safetensors file '", path,
                      "': __metadata__ must be an object of strings");
        for (auto& [k, mv] : v.members) {
          LONGSEQ_CHECK(mv.kind == detail::Json::Kind::string, "safetensors file '", path,
                        "': metadata entry '", k, "' is not a string");
          st.metadata[k] = mv.str;
        }
        continue;
      }
      auto where = [&] { return "safetensors file '" + path + "': tensor '" + name + "'"; };
      LONGSEQ_CHECK(v.kind == detail::Json::Kind::object, where(), " must be described by an object");
      const detail::Json *dt = nullptr, *shape = nullptr, *offs = nullptr;
      for (auto& [k, f] : v.members) {
        if (k == "dtype") dt = &f;
        else if (k == "shape") shape = &f;
        else if (k == "data_offsets") offs = &f;
        else LONGSEQ_FAIL(where(), " has an unknown field '", k, "'");
      }
      LONGSEQ_CHECK(dt && dt->kind == detail::Json::Kind::string, where(), " lacks a string 'dtype'");
      LONGSEQ_CHECK(shape && shape->kind == detail::Json::Kind::array, where(), " lacks a 'shape' array");
      LONGSEQ_CHECK(offs && offs->kind == detail::Json::Kind::array && offs->items.size() == 2, where(),
                    " lacks 'data_offsets' [begin, end]");
      TensorRecord rec;
      rec.name = name;
      LONGSEQ_CHECK(detail::safetensors_dtype_from_name(dt->str, rec.dtype), where(), " has dtype '",
                    dt->str, "', expected one of F32, F64, F16, BF16, I32, I64, U8");
      LONGSEQ_CHECK(int(shape->items.size()) <= Shape::max_rank, where(), " has rank ", shape->items.size(),
                    ", more than the supported ", Shape::max_rank);
      rec.shape.rank = int(shape->items.size());
      std::uint64_t numel = 1;
      for (std::size_t k = 0; k < shape->items.size(); ++k) {
        const auto& d = shape->items[k];
        LONGSEQ_CHECK(d.kind == detail::Json::Kind::number && d.integral && d.integer >= 0, where(),
                      " has a shape entry that is not a non-negative integer");
        rec.shape.dims[k] = d.integer;
        LONGSEQ_CHECK(d.integer == 0 || numel <= (std::uint64_t(1) << 62) / std::uint64_t(d.integer),
                      where(), " has an overflowing shape");
        numel *= std::uint64_t(d.integer);
      }
      std::uint64_t ob[2];
      for (int k = 0; k < 2; ++k) {
        const auto& o = offs->items[std::size_t(k)];
        LONGSEQ_CHECK(o.kind == detail::Json::Kind::number && o.integral && o.integer >= 0, where(),
                      " has a data offset that is not a non-negative integer");
        ob[k] = std::uint64_t(o.integer);
      }
      const std::uint64_t b = ob[0], e = ob[1];
      LONGSEQ_CHECK(b <= e && e <= data_size, where(), " has data bytes [", b, ", ", e,
                    ") (file bytes [", data_begin + b, ", ", data_begin + e, ")) outside the data block of ",
                    data_size, " bytes");
      const std::uint64_t want = numel * dtype_size(rec.dtype);
      LONGSEQ_CHECK(e - b == want, where(), " with dtype ", dt->str, " and shape ", rec.shape, " needs ", want,
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
    std::string h = "{";
    bool first = true;
    if (!metadata.empty()) {
      h += "\"__metadata__\":{";
      for (auto it = metadata.begin(); it != metadata.end(); ++it) {
        if (it != metadata.begin()) h += ',';
        detail::json_escape(it->first, h);
        h += ':';
        detail::json_escape(it->second, h);
      }
      h += '}';
      first = false;
    }
    std::uint64_t off = 0;
    for (const auto& t : tensors) {
      LONGSEQ_CHECK(t.name != "__metadata__", "a tensor may not be named '__metadata__'");
      LONGSEQ_CHECK(t.bytes.size() == std::size_t(t.shape.numel()) * dtype_size(t.dtype), "tensor '", t.name,
                    "' holds ", t.bytes.size(), " bytes, expected ", t.shape.numel() * index_t(dtype_size(t.dtype)),
                    " for shape ", t.shape);
      if (!first) h += ',';
      first = false;
      detail::json_escape(t.name, h);
      h += ":{\"dtype\":\"";
      h += detail::safetensors_dtype_name(t.dtype);
      h += "\",\"shape\":[";
      for (int k = 0; k < t.shape.rank; ++k) {
        if (k) h += ',';
        h += std::to_string(t.shape.dims[k]);
      }
      h += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + t.bytes.size()) + "]}";
      off += t.bytes.size();
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
        out[i] = T(detail::read_as<float>(r.bytes.data(), r.dtype, i));
      else
        out[i] = detail::read_as<T>(r.bytes.data(), r.dtype, i);
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
