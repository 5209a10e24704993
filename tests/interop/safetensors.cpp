#include <doctest/doctest.h>

#include <longseq/interop/safetensors.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include "temp_root.hpp"

using namespace longseq;
using interop::Safetensors;

namespace {

std::string temp_path(const std::string& name) {
  auto dir = testtmp::dir("interop");
  return (dir / name).string();
}

std::string read_all(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_all(const std::string& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(s.data(), std::streamsize(s.size()));
}
// A file from a raw JSON header and data bytes.
std::string raw_file(const std::string& header, std::size_t data_bytes) {
  std::string s;
  std::uint64_t n = header.size();
  for (int k = 0; k < 8; ++k) s += char((n >> (8 * k)) & 0xff);
  return s + header + std::string(data_bytes, '\0');
}

// The interpreter CMake chose for the script tests (LONGSEQ_PYTHON), not whichever python3 is first on PATH.
#ifndef LONGSEQ_TEST_PYTHON
#define LONGSEQ_TEST_PYTHON "python3"
#endif
const std::string python = LONGSEQ_TEST_PYTHON;

bool python_safetensors_available() {
  return std::system((python + " -c 'import safetensors, numpy' >/dev/null 2>&1").c_str()) == 0;
}

Safetensors sample() {
  Safetensors st;
  Tensor<float> a(Shape{2, 3});
  for (index_t i = 0; i < 6; ++i) a[i] = float(i) * 0.5f - 1.0f;
  Tensor<double> b(Shape{4});
  for (index_t i = 0; i < 4; ++i) b[i] = 1.0 / double(i + 1);
  Tensor<std::int64_t> c(Shape{});
  c[0] = -123456789012345;
  Tensor<std::uint8_t> d(Shape{3});
  d[0] = 0; d[1] = 128; d[2] = 255;
  Tensor<half> e(Shape{2});
  e[0] = half(1.5f); e[1] = half(-2.25f);
  Tensor<bf16> f(Shape{1, 2});
  f[0] = bf16(3.0f); f[1] = bf16(-0.5f);
  Tensor<std::int32_t> g(Shape{0, 5});
  st.put<float>("layer.weight", a.view());
  st.put<double>("layer.bias", b.view());
  st.put<std::int64_t>("step", c.view());
  st.put<std::uint8_t>("bytes", d.view());
  st.put<half>("h", e.view());
  st.put<bf16>("bf", f.view());
  st.put<std::int32_t>("empty", g.view());
  st.metadata["config"] = "{\"d_model\": 8, \"name\": \"s4d\\\"quoted\"}";
  st.metadata["step"] = "42";
  return st;
}

}  // namespace

TEST_CASE("safetensors round trip keeps dtypes, shapes, values and metadata") {
  std::string p = temp_path("roundtrip.safetensors");
  sample().save(p);
  CHECK_FALSE(std::filesystem::exists(p + ".tmp." + std::to_string(::getpid())));
  Safetensors st = Safetensors::load(p);
  CHECK(st.tensors.size() == 7);
  CHECK(st.metadata.at("step") == "42");
  CHECK(st.metadata.at("config") == "{\"d_model\": 8, \"name\": \"s4d\\\"quoted\"}");
  auto w = st.get<float>("layer.weight");
  CHECK(w.shape() == Shape{2, 3});
  CHECK(w(1, 2) == 1.5f);
  CHECK(st.record("layer.bias").dtype == DType::f64);
  CHECK(st.get<double>("layer.bias")[2] == 1.0 / 3.0);
  CHECK(st.get<std::int64_t>("step").shape().rank == 0);
  CHECK(st.get<std::int64_t>("step")[0] == -123456789012345);
  CHECK(st.get<float>("bytes")[2] == 255.0f);  // converted on read
  CHECK(st.get<double>("h")[1] == -2.25);
  CHECK(st.get<float>("bf")[0] == 3.0f);
  CHECK(st.get<float>("layer.bias")[1] == 0.5f);
  CHECK(st.get<std::int32_t>("empty").shape() == Shape{0, 5});
  CHECK(st.contains("h"));
  CHECK_FALSE(st.contains("missing"));
  CHECK_THROWS_WITH_AS(st.get<float>("missing"), doctest::Contains("no tensor named 'missing'"), Error);
  // Saving again over the same path replaces it atomically and byte-identically.
  st.save(p);
  CHECK(read_all(p) == sample().serialize());
}

TEST_CASE("safetensors keeps the file's tensor order and refuses headers it could not write back") {
  std::string p = temp_path("order.safetensors");
  write_all(p, raw_file(R"({"z":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 2));
  Safetensors st = Safetensors::load(p);
  REQUIRE(st.tensors.size() == 2);
  CHECK(st.tensors[0].name == "z");
  CHECK(st.tensors[1].name == "a");
  Tensor<float> x(Shape{1});
  Safetensors bad;
  bad.put<float>("bad\xff", x.view());
  CHECK_THROWS_WITH_AS(bad.serialize(), doctest::Contains("is not valid UTF-8"), Error);
  Safetensors twice;
  twice.put<float>("w", x.view());
  twice.tensors.push_back(twice.tensors[0]);
  CHECK_THROWS_WITH_AS(twice.serialize(), doctest::Contains("two tensors are named 'w'"), Error);
}

TEST_CASE("safetensors refuses a floating value that does not fit the integer type it is read as") {
  Safetensors st;
  Tensor<double> d(Shape{3});
  d[0] = 2.9;
  d[1] = -1e300;
  d[2] = std::nan("");
  st.put<double>("d", d.view());
  CHECK_THROWS_WITH_AS(st.get<std::int64_t>("d"), doctest::Contains("tensor 'd' element 1 = -1e+300"), Error);
  Tensor<float> f(Shape{2});
  f[0] = 255.5f;
  f[1] = 256.0f;
  st.put<float>("f", f.view());
  CHECK_THROWS_WITH_AS(st.get<std::uint8_t>("f"), doctest::Contains("element 1 = 256"), Error);
  f[1] = -0.5f;  // truncates to 0: fits
  st.put<float>("f", f.view());
  auto u = st.get<std::uint8_t>("f");
  CHECK(u[0] == 255);
  CHECK(u[1] == 0);
  d[1] = -2147483648.0;
  d[2] = 2147483647.0;
  st.put<double>("d", d.view());
  auto i = st.get<std::int32_t>("d");
  CHECK(i[0] == 2);
  CHECK(i[1] == -2147483647 - 1);
  CHECK(i[2] == 2147483647);
}

// Every input that once crashed the fuzz harness (tests/data/fuzz/regressions/safetensors) is read the
// way the harness reads it: refused with longseq::Error, or accepted and written back unchanged.
TEST_CASE("safetensors fuzz regression inputs are refused cleanly") {
  const std::filesystem::path dir = std::filesystem::path(LONGSEQ_TEST_DATA_DIR) / "fuzz/regressions/safetensors";
  REQUIRE(std::filesystem::is_directory(dir));
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    CAPTURE(e.path().filename().string());
    ++n;
    try {
      Safetensors st = Safetensors::load(e.path().string());
      for (const auto& t : st.tensors) {
        (void)st.get<float>(t.name);
        (void)st.get<std::int64_t>(t.name);
      }
      std::string p = temp_path("replay.safetensors");
      st.save(p);
      CHECK(read_all(p) == st.serialize());
    } catch (const Error& err) {
      CHECK(std::string(err.what()).find("safetensors") != std::string::npos);
    }
  }
  CHECK(n > 0);
}

TEST_CASE("safetensors put copies strided views") {
  Tensor<float> a(Shape{3, 4});
  for (index_t i = 0; i < 12; ++i) a[i] = float(i);
  TensorView<float> v = a.view();
  TensorView<const float> t(v.data + 1, Shape{3, 2}, Shape{4, 2});  // columns 1 and 3
  Safetensors st;
  st.put<float>("cols", t);
  auto g = st.get<float>("cols");
  CHECK(g(0, 0) == 1.0f);
  CHECK(g(0, 1) == 3.0f);
  CHECK(g(2, 1) == 11.0f);
}

TEST_CASE("safetensors rejects corrupt files with the file, tensor and byte range") {
  std::string good = temp_path("good.safetensors");
  sample().save(good);
  const std::string bytes = read_all(good);
  std::string p = temp_path("bad.safetensors");

  SUBCASE("missing file") {
    CHECK_THROWS_WITH_AS(Safetensors::load(temp_path("nope.safetensors")),
                         doctest::Contains("cannot open safetensors file"), Error);
  }
  SUBCASE("shorter than the length prefix") {
    write_all(p, bytes.substr(0, 5));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("is truncated: 5 bytes"), Error);
  }
  SUBCASE("header longer than the file") {
    std::uint64_t n = 0;
    for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<unsigned char>(bytes[std::size_t(k)]);
    write_all(p, bytes.substr(0, 8 + n / 2));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("header claims bytes [8, "), Error);
  }
  SUBCASE("absurd header length") {
    std::string s = bytes;
    s[7] = char(0x7f);
    write_all(p, s);
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("header length"), Error);
  }
  SUBCASE("truncated data block") {
    write_all(p, bytes.substr(0, bytes.size() - 3));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains(p.c_str()), Error);
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("outside the data block"), Error);
  }
  SUBCASE("bad JSON") {
    write_all(p, raw_file("{\"a\": {\"dtype\": \"F32\", ", 0));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("invalid JSON header"), Error);
    write_all(p, raw_file("[1, 2]  ", 0));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("must be an object"), Error);
    write_all(p, raw_file("{\"a\":1,\"a\":2}", 0));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("duplicate key 'a'"), Error);
    // Inside a tensor's description too (nlohmann-json alone would keep the last one).
    write_all(p, raw_file(R"({"x":{"dtype":"F32","shape":[1],"dtype":"F64","data_offsets":[0,4]}})", 4));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("duplicate key 'dtype'"), Error);
    // The byte where parsing stopped, counted from the file's start (8-byte length prefix included).
    write_all(p, raw_file("{\"a\" 1}", 0));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("invalid JSON header at byte 13 (header offset 5)"),
                         Error);
    write_all(p, raw_file(std::string(100, '[') + std::string(100, ']'), 0));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("nesting deeper than 64 levels"), Error);
    write_all(p, raw_file(R"({"x":1e999})", 0));  // nlohmann-json reports this one as out_of_range
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("invalid JSON header: number overflow"), Error);
    write_all(p, raw_file("{\"x\":\"\xff\"}", 0));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("invalid JSON header"), Error);
  }
  SUBCASE("numbers that are not sizes") {
    write_all(p, raw_file(R"({"x":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", 4));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("tensor 'x' has a shape entry"), Error);
    write_all(p, raw_file(R"({"x":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}})", 4));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("tensor 'x' has a shape entry"), Error);
    write_all(p, raw_file(R"({"x":{"dtype":"F32","shape":[4611686018427387905],"data_offsets":[0,4]}})", 4));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("tensor 'x' has a shape entry"), Error);
    write_all(p, raw_file(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("tensor 'x' has an overflowing shape"), Error);
    write_all(p, raw_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("tensor 'x' has a data offset"), Error);
    write_all(p, raw_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}})", 4));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("tensor 'x' has an unknown field 'extra'"), Error);
  }
  SUBCASE("unknown dtype") {
    write_all(p, raw_file(R"({"x":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", 8));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("tensor 'x' has dtype 'C64'"), Error);
  }
  SUBCASE("size does not match shape and dtype") {
    write_all(p, raw_file(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("tensor 'x' with dtype F32 and shape (3) needs 12 bytes but data bytes [0, 8) hold 8"), Error);
  }
  SUBCASE("offsets out of range") {
    write_all(p, raw_file(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("tensor 'x' has data bytes [0, 16)"), Error);
  }
  SUBCASE("gap between tensors") {
    write_all(p, raw_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("tensor 'y' starts at data byte 8 but the previous tensor ends at 4"), Error);
  }
  SUBCASE("overlapping tensors") {
    write_all(p, raw_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("starts at data byte 4 but the previous tensor ends at 8"), Error);
  }
  SUBCASE("trailing bytes not covered by any tensor") {
    write_all(p, raw_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 12));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("tensors cover data bytes [0, 4) but the data block has 12 bytes"), Error);
  }
  SUBCASE("negative shape") {
    write_all(p, raw_file(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("tensor 'x' has a shape entry"), Error);
  }
  SUBCASE("metadata values must be strings") {
    write_all(p, raw_file(R"({"__metadata__":{"k":3}})", 0));
    CHECK_THROWS_WITH_AS(Safetensors::load(p), doctest::Contains("metadata entry 'k' is not a string"), Error);
  }
}

TEST_CASE("Python's safetensors package reads our files and we read its files") {
  if (!python_safetensors_available()) {
    MESSAGE("skipped: the test Python (LONGSEQ_PYTHON) with the safetensors and numpy packages is not available");
    return;
  }
  std::string ours = temp_path("ours.safetensors");
  sample().save(ours);
  std::string script = temp_path("check.py");
  std::string theirs = temp_path("theirs.safetensors");
  write_all(script,
            "import sys, numpy as np\n"
            "from safetensors import safe_open\n"
            "from safetensors.numpy import load_file, save_file\n"
            "with safe_open(sys.argv[1], 'np') as f:\n"
            "    t = {k: f.get_tensor(k) for k in f.keys() if k != 'bf'}\n"
            "    assert f.get_slice('bf').get_dtype() == 'BF16' and f.get_slice('bf').get_shape() == [1, 2]\n"
            "assert t['layer.weight'].dtype == np.float32 and t['layer.weight'].shape == (2, 3), t['layer.weight']\n"
            "assert t['layer.weight'][1, 2] == 1.5\n"
            "assert t['layer.bias'].dtype == np.float64 and abs(t['layer.bias'][2] - 1/3) < 1e-15\n"
            "assert t['step'].shape == () and t['step'] == -123456789012345\n"
            "assert list(t['bytes']) == [0, 128, 255]\n"
            "assert t['h'].dtype == np.float16 and t['h'][1] == -2.25\n"
            "assert t['empty'].shape == (0, 5)\n"
            "with safe_open(sys.argv[1], 'np') as f:\n"
            "    assert f.metadata()['step'] == '42', f.metadata()\n"
            "save_file({'a': np.arange(6, dtype=np.float32).reshape(2, 3), 'i': np.array([7, -8], dtype=np.int32)},\n"
            "          sys.argv[2], metadata={'who': 'python'})\n");
  int rc = std::system((python + " " + script + " " + ours + " " + theirs).c_str());
  REQUIRE(rc == 0);
  Safetensors st = Safetensors::load(theirs);
  CHECK(st.metadata.at("who") == "python");
  CHECK(st.get<float>("a")(1, 1) == 4.0f);
  CHECK(st.get<std::int32_t>("i")[1] == -8);
}
