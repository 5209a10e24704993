#include <doctest/doctest.h>

#include <longseq/core/dtype.hpp>

#include <cmath>
#include <limits>

using namespace longseq;

TEST_CASE("half round-trips and rounds to nearest even") {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.333251953125f})
    CHECK(float(half(f)) == f);
  CHECK(float(half(1.0f + 1.0f / 2048)) == 1.0f);             // tie below an even mantissa: down
  CHECK(float(half(1.0f + 3.0f / 2048)) == 1.0f + 1.0f / 512); // tie above an odd mantissa: up
  CHECK(float(half(1.0f + 3.0f / 4096)) == 1.0f + 1.0f / 1024);
  CHECK(std::isinf(float(half(1e6f))));
  CHECK(std::isnan(float(half(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(float(half(1e-9f)) == 0.0f);
}

TEST_CASE("bf16 keeps the float exponent and 8 bits of mantissa") {
  CHECK(float(bf16(1.0f)) == 1.0f);
  CHECK(float(bf16(3.0e38f)) == doctest::Approx(3.0e38f).epsilon(0.01));
  CHECK(float(bf16(1.0f + 1.0f / 256)) == 1.0f);  // tie to even
  CHECK(float(bf16(1.0f + 3.0f / 256)) == 1.0f + 1.0f / 64);
  CHECK(std::isnan(float(bf16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(dtype_name(dtype_v<bf16>) == "bfloat16");
  CHECK(dtype_size(DType::c128) == 16);
}
