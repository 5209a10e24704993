// Image augmentations: exact pixels of a shift, a flip and a cutout on small images, draws that depend only on
// (seed, epoch, example), the spec parser, and refusal of settings an image cannot take.
#include <doctest/doctest.h>

#include <cstdint>
#include <set>
#include <vector>

#include <longseq/data/augment.hpp>

#include "helpers.hpp"

using namespace longseq::data;
using longseq::Error;
using longseq::index_t;

namespace {

// A 3 x 4 image whose intensities are 1..12 row by row; values are the normalized intensities.
struct Image {
  static constexpr index_t H = 3, W = 4;
  std::vector<std::int32_t> ids;
  std::vector<float> values;
  PixelNorm norm{};
  Image() {
    for (index_t k = 0; k < H * W; ++k) {
      ids.push_back(std::int32_t(k + 1));
      values.push_back(norm(std::uint8_t(k + 1)));
    }
  }
  void apply(const AugmentDraw& d, index_t cutout = 0) { augment_image(ids.data(), values.data(), H, W, d, cutout, norm); }
  // Each value must be the normalized form of its intensity (the two travel together).
  bool consistent() const {
    for (std::size_t k = 0; k < ids.size(); ++k)
      if (values[k] != norm(std::uint8_t(ids[k]))) return false;
    return true;
  }
};

Dataset images(index_t n, index_t h, index_t w) { return testdata::tiny_images(n, h, w, 7, 3, 1); }

}  // namespace

TEST_CASE("augment: a shift moves the image and fills with black, exactly") {
  {
    Image im;
    im.apply({.dy = 1, .dx = 0});  // down one row: row 0 black, rows 1-2 are the old rows 0-1
    CHECK(im.ids == std::vector<std::int32_t>{0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8});
    CHECK(im.consistent());
  }
  {
    Image im;
    im.apply({.dy = 0, .dx = -2});  // left two columns
    CHECK(im.ids == std::vector<std::int32_t>{3, 4, 0, 0, 7, 8, 0, 0, 11, 12, 0, 0});
    CHECK(im.values[2] == PixelNorm{}(0));
    CHECK(im.values[2] == -1.0f);  // (0 / 255 - 0.5) / 0.5
  }
  {
    Image im;
    im.apply({.dy = -1, .dx = 1});
    CHECK(im.ids == std::vector<std::int32_t>{0, 5, 6, 7, 0, 9, 10, 11, 0, 0, 0, 0});
  }
}

TEST_CASE("augment: a horizontal flip mirrors each row; with a shift it mirrors the shifted image") {
  {
    Image im;
    im.apply({.flip = true});
    CHECK(im.ids == std::vector<std::int32_t>{4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9});
    CHECK(im.consistent());
  }
  {
    Image im;
    im.apply({.dy = 0, .dx = 1, .flip = true});  // shifted right: 0 1 2 3, then mirrored: 3 2 1 0
    CHECK(im.ids == std::vector<std::int32_t>{3, 2, 1, 0, 7, 6, 5, 0, 11, 10, 9, 0});
  }
  {
    Image im;
    im.apply({.flip = true});
    im.apply({.flip = true});
    CHECK(im.ids == Image().ids);  // twice is the identity
  }
}

TEST_CASE("augment: cutout blacks out a square around its centre, clipped at the border") {
  {
    Image im;
    im.apply({.cy = 1, .cx = 2}, 2);  // rows 0-1, columns 1-2
    CHECK(im.ids == std::vector<std::int32_t>{1, 0, 0, 4, 5, 0, 0, 8, 9, 10, 11, 12});
    CHECK(im.consistent());
  }
  {
    Image im;
    im.apply({.cy = 0, .cx = 0}, 2);  // the square reaches past the corner: only (0, 0) is inside
    CHECK(im.ids == std::vector<std::int32_t>{0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  }
  {
    Image im;
    im.apply({.cy = -1, .cx = -1}, 2);  // no centre drawn: nothing cut
    CHECK(im.ids == Image().ids);
  }
}

TEST_CASE("augment: draws depend only on (seed, epoch, example) and cover their ranges") {
  const AugmentOptions o{.translate = 2, .flip = 0.5, .cutout = 3, .seed = 9};
  auto same = [](const AugmentDraw& a, const AugmentDraw& b) {
    return a.dy == b.dy && a.dx == b.dx && a.flip == b.flip && a.cy == b.cy && a.cx == b.cx;
  };
  CHECK(same(draw_augment(o, 28, 28, 3, 41), draw_augment(o, 28, 28, 3, 41)));
  std::set<index_t> shifts;
  index_t flips = 0, differ_epoch = 0, differ_seed = 0;
  const index_t n = 4000;
  AugmentOptions other = o;
  other.seed = 10;
  for (index_t i = 0; i < n; ++i) {
    const AugmentDraw d = draw_augment(o, 28, 28, 0, i);
    CHECK(d.dy >= -2);
    CHECK(d.dy <= 2);
    CHECK(d.cy >= 0);
    CHECK(d.cy < 28);
    shifts.insert(d.dx);
    flips += d.flip;
    differ_epoch += !same(d, draw_augment(o, 28, 28, 1, i));
    differ_seed += !same(d, draw_augment(other, 28, 28, 0, i));
  }
  CHECK(shifts == std::set<index_t>{-2, -1, 0, 1, 2});
  CHECK(double(flips) / double(n) == doctest::Approx(0.5).epsilon(0.08));
  CHECK(differ_epoch > n * 9 / 10);
  CHECK(differ_seed > n * 9 / 10);
  // Without a cutout no centre is kept; without a flip probability nothing is mirrored.
  const AugmentDraw d = draw_augment({.translate = 1}, 28, 28, 0, 5);
  CHECK(d.cy == -1);
  CHECK_FALSE(d.flip);
}

TEST_CASE("augment: a batch is augmented per example, whatever batch the example is in") {
  const Dataset d = images(6, 5, 4);
  const AugmentOptions o{.translate = 1, .flip = 0.5, .cutout = 2, .seed = 3};
  const std::vector<index_t> first{0, 3, 5}, second{5, 1};
  Batch a = make_batch(d, first), b = make_batch(d, second), plain = make_batch(d, first);
  augment_batch(a, o, d.info(), 4);
  augment_batch(b, o, d.info(), 4);
  const index_t L = 20;
  // Example 5 is row 2 of a and row 0 of b: the same pixels.
  CHECK(std::vector<std::int32_t>(a.ids.begin() + 2 * L, a.ids.begin() + 3 * L) ==
        std::vector<std::int32_t>(b.ids.begin(), b.ids.begin() + L));
  // Row by row it is augment_image with that example's draw.
  for (index_t r = 0; r < 3; ++r) {
    std::vector<std::int32_t> ids(plain.ids.begin() + r * L, plain.ids.begin() + (r + 1) * L);
    std::vector<float> values(plain.values.begin() + r * L, plain.values.begin() + (r + 1) * L);
    augment_image(ids.data(), values.data(), 5, 4, draw_augment(o, 5, 4, 4, first[std::size_t(r)]), 2, d.info().norm);
    CHECK(ids == std::vector<std::int32_t>(a.ids.begin() + r * L, a.ids.begin() + (r + 1) * L));
    CHECK(values == std::vector<float>(a.values.begin() + r * L, a.values.begin() + (r + 1) * L));
  }
  CHECK(a.ids != plain.ids);  // something changed
  CHECK(a.labels == plain.labels);
  // Off by default: nothing changes.
  Batch c = make_batch(d, first);
  augment_batch(c, AugmentOptions{}, d.info(), 4);
  CHECK(c.ids == plain.ids);
  CHECK(c.values == plain.values);
}

TEST_CASE("augment: the spec parser, and settings an image cannot take are refused") {
  CHECK_FALSE(parse_augment("none").enabled());
  CHECK_FALSE(parse_augment("").enabled());
  const AugmentOptions o = parse_augment("translate=2,flip");
  CHECK(o.translate == 2);
  CHECK(o.flip == 0.5);
  CHECK(o.cutout == 0);
  CHECK(parse_augment("flip=0.25,cutout=8").flip == 0.25);
  CHECK(parse_augment("flip=0.25,cutout=8").cutout == 8);
  CHECK(augment_spec(parse_augment("translate=2,flip,cutout=3")) == "translate=2,flip=0.5,cutout=3");
  CHECK(augment_spec(parse_augment(augment_spec(o))).compare(augment_spec(o)) == 0);
  CHECK(augment_spec({}) == "none");
  CHECK_THROWS_WITH_AS(parse_augment("mixup=3"), doctest::Contains("unknown augmentation 'mixup'"), Error);
  CHECK_THROWS_WITH_AS(parse_augment("translate=x"), doctest::Contains("'translate' needs a number, got 'x'"), Error);
  CHECK_THROWS_WITH_AS(parse_augment("translate=-1"), doctest::Contains("whole number >= 0"), Error);
  CHECK_THROWS_WITH_AS(parse_augment("cutout=1.5"), doctest::Contains("whole number >= 0"), Error);
  CHECK_THROWS_WITH_AS(parse_augment("translate=1e30"), doctest::Contains("at most 1000000"), Error);
  CHECK_THROWS_WITH_AS(parse_augment("flip=2"), doctest::Contains("'flip' is a probability"), Error);
  CHECK_THROWS_WITH_AS(check_augment({.translate = 4}, 4, 5), doctest::Contains("translate = 4 must be smaller than "
                                                                                "the image (4 x 5)"), Error);
  CHECK_THROWS_WITH_AS(check_augment({.cutout = 6}, 8, 6), doctest::Contains("cutout = 6"), Error);
  CHECK_THROWS_WITH_AS(check_augment({.flip = 1}, 0, 0), doctest::Contains("image tasks only"), Error);
  CHECK_NOTHROW(check_augment({.translate = 3, .flip = 1, .cutout = 3}, 4, 5));
  // A batch whose rows are not whole images of the task's size is refused naming the image.
  Dataset d = images(2, 5, 4);
  TaskInfo wrong = d.info();
  wrong.height = 4;
  Batch b = make_batch(d, std::vector<index_t>{1});
  CHECK_THROWS_WITH_AS(augment_batch(b, {.flip = 1}, wrong, 0), doctest::Contains("image 1"), Error);
}
