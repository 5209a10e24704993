// The staged image augmentations: exact pixels of every intensity operation and of the affine warp on tiny
// images, AutoAugment's table and magnitudes, the colour operations' draws, the named lra2025 policies, the
// spec parser's refusals, and batches augmented per (seed, epoch, image) in the reference pipelines' order.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <numbers>
#include <set>
#include <vector>

#include <longseq/data/augment.hpp>

#include "helpers.hpp"

using namespace longseq::data;
using longseq::Error;
using longseq::index_t;

namespace {

using Pixels = std::vector<std::uint8_t>;

Pixels ramp(index_t n, int step = 1, int first = 0) {
  Pixels p(static_cast<std::size_t>(n), 0);
  for (index_t k = 0; k < n; ++k) p[std::size_t(k)] = std::uint8_t(first + step * k);
  return p;
}

Pixels warped(Pixels p, index_t h, index_t w, const image::Affine& a,
              image::Resample r = image::Resample::nearest) {
  image::affine(p.data(), h, w, a, r);
  return p;
}

Dataset images(index_t n, index_t h, index_t w) { return testdata::tiny_images(n, h, w, 11, 7, 2); }

}  // namespace

TEST_CASE("image ops: invert, posterize, solarize, flips") {
  Pixels p{0, 7, 100, 200, 255, 129};
  image::invert(p.data(), 6);
  CHECK(p == Pixels{255, 248, 155, 55, 0, 126});
  p = {0, 7, 100, 200, 255, 129};
  image::posterize(p.data(), 6, 3);  // keeps 0b11100000
  CHECK(p == Pixels{0, 0, 96, 192, 224, 128});
  p = {0, 7, 100, 200, 255, 129};
  image::posterize(p.data(), 6, 0);
  CHECK(p == Pixels{0, 0, 0, 0, 0, 0});
  p = {0, 7, 100, 200, 255, 129};
  image::posterize(p.data(), 6, 8);
  CHECK(p == Pixels{0, 7, 100, 200, 255, 129});
  CHECK_THROWS_WITH_AS(image::posterize(p.data(), 6, 9), doctest::Contains("bits must be in [0, 8], got 9"), Error);
  image::solarize(p.data(), 6, 100);  // at or above the threshold: inverted
  CHECK(p == Pixels{0, 7, 155, 55, 0, 126});
  p = ramp(6);  // 2 x 3: 0 1 2 / 3 4 5
  image::hflip(p.data(), 2, 3);
  CHECK(p == Pixels{2, 1, 0, 5, 4, 3});
  p = ramp(6);
  image::vflip(p.data(), 2, 3);
  CHECK(p == Pixels{3, 4, 5, 0, 1, 2});
  p = ramp(9);
  image::vflip(p.data(), 3, 3);  // the middle row stays
  CHECK(p == Pixels{6, 7, 8, 3, 4, 5, 0, 1, 2});
}

TEST_CASE("image ops: autocontrast and equalize follow Pillow's rules") {
  Pixels p{10, 20, 61, 30};
  image::autocontrast(p.data(), 4);  // scale 255 / 51 = 5, offset -50
  CHECK(p == Pixels{0, 50, 255, 100});
  p = {0, 10, 51};
  image::autocontrast(p.data(), 3);
  CHECK(p == Pixels{0, 50, 255});
  p = {9, 9, 9};
  image::autocontrast(p.data(), 3);  // flat: unchanged
  CHECK(p == Pixels{9, 9, 9});
  // 255 pixels at 5, 255 at 6, 90 at 7: step = (600 - 90) / 255 = 2, lut(i) = (1 + pixels below i) / 2.
  Pixels e;
  e.insert(e.end(), 255, 5);
  e.insert(e.end(), 255, 6);
  e.insert(e.end(), 90, 7);
  image::equalize(e.data(), index_t(e.size()));
  CHECK(e[0] == 0);
  CHECK(e[300] == 128);
  CHECK(e[550] == 255);
  // Too few pixels below the brightest level (step 0) and a single level: unchanged.
  Pixels few{0, 0, 128, 255};
  image::equalize(few.data(), 4);
  CHECK(few == Pixels{0, 0, 128, 255});
  Pixels one(300, 17);
  image::equalize(one.data(), 300);
  CHECK(one == Pixels(300, 17));
}

TEST_CASE("image ops: brightness, contrast and sharpness blend with a degenerate image, truncated") {
  Pixels p{100, 200, 3};
  image::brightness(p.data(), 3, 1.5);
  CHECK(p == Pixels{150, 255, 4});  // 4.5 truncates to 4; 300 clips
  p = {100, 200, 3};
  image::brightness(p.data(), 3, 0.5);
  CHECK(p == Pixels{50, 100, 1});
  p = {0, 100};
  image::contrast(p.data(), 2, 2.0);  // mean 50
  CHECK(p == Pixels{0, 150});
  p = {0, 101};
  image::contrast(p.data(), 2, 0.0);  // mean 50.5 rounds to 51: the flat image
  CHECK(p == Pixels{51, 51});
  // 3 x 3 with a bright centre: smoothed centre = round(5 * 130 / 13) = 50; the border is its own smoothing.
  Pixels s(9, 0);
  s[4] = 130;
  Pixels t = s;
  image::sharpness(t.data(), 3, 3, 0.0);
  CHECK(t[4] == 50);
  CHECK(t[0] == 0);
  t = s;
  image::sharpness(t.data(), 3, 3, 2.0);  // 50 + 2 * (130 - 50)
  CHECK(t[4] == 210);
  t = s;
  image::sharpness(t.data(), 3, 3, 1.0);
  CHECK(t == s);
}

TEST_CASE("image ops: the affine warp maps pixel centres back, exactly") {
  const Pixels p = ramp(16, 1, 1);  // 4 x 4: 1..16
  const double cx = 2, cy = 2;
  CHECK(warped(p, 4, 4, {.cx = cx, .cy = cy}) == p);
  // A shift right by one and up by one: black enters from the left and the bottom.
  CHECK(warped(p, 4, 4, {.cx = cx, .cy = cy, .tx = 1, .ty = -1}) ==
        Pixels{0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 0, 0, 0});
  // 90 degrees clockwise on screen about the centre: output (y, x) reads input (3 - x, y).
  Pixels rot(16);
  for (index_t y = 0; y < 4; ++y)
    for (index_t x = 0; x < 4; ++x) rot[std::size_t(y * 4 + x)] = p[std::size_t((3 - x) * 4 + y)];
  CHECK(warped(p, 4, 4, {.cx = cx, .cy = cy, .angle = 90}) == rot);
  // Zoom 2 about the centre, nearest: rows and columns 1 1 2 2 of the input.
  const int z[4] = {1, 1, 2, 2};
  Pixels zoom(16);
  for (index_t y = 0; y < 4; ++y)
    for (index_t x = 0; x < 4; ++x) zoom[std::size_t(y * 4 + x)] = p[std::size_t(z[y] * 4 + z[x])];
  CHECK(warped(p, 4, 4, {.cx = cx, .cy = cy, .scale = 2}) == zoom);
  // Bilinear on a horizontal ramp 0 10 20 30: the zoom samples x = 0.75, 1.25, 1.75, 2.25 (pixel units) -> 7.5,
  // 12.5, 17.5, 22.5, truncated.
  Pixels h(16);
  for (index_t k = 0; k < 16; ++k) h[std::size_t(k)] = std::uint8_t(10 * (k % 4));
  const Pixels hz = warped(h, 4, 4, {.cx = cx, .cy = cy, .scale = 2}, image::Resample::bilinear);
  for (index_t y = 0; y < 4; ++y) CHECK(Pixels(hz.begin() + y * 4, hz.begin() + y * 4 + 4) == Pixels{7, 12, 17, 22});
  // A horizontal shear of tan = 0.5 about the top-left corner: row y reads x + floor(0.75 + y / 2) of the input.
  const double s = std::atan(0.5) * 180.0 / std::numbers::pi;
  const int sh[4] = {0, 1, 1, 2};
  Pixels shear(16);
  for (index_t y = 0; y < 4; ++y)
    for (index_t x = 0; x < 4; ++x)
      shear[std::size_t(y * 4 + x)] = x + sh[y] < 4 ? p[std::size_t(y * 4 + x + sh[y])] : 0;
  CHECK(warped(p, 4, 4, {.shear_x = s}) == shear);
  // A bilinear point outside the image is black; one inside near the border reads the clamped edge.
  const Pixels flat(16, 90);
  const Pixels moved = warped(flat, 4, 4, {.cx = cx, .cy = cy, .tx = 0.25}, image::Resample::bilinear);
  CHECK(moved[0] == 90);  // reads x = 0.25, inside
  CHECK(moved[1] == 90);
  CHECK_THROWS_WITH_AS(warped(p, 4, 4, {.scale = 0}), doctest::Contains("scale must be positive"), Error);
}

TEST_CASE("AutoAugment: the CIFAR-10 table and each operation's magnitude") {
  CHECK(autoaugment_cifar10.size() == 25);
  CHECK(autoaugment_cifar10[1][0].op == AutoOp::rotate);
  CHECK(autoaugment_cifar10[1][0].p == 0.7);
  CHECK(autoaugment_cifar10[24][1].op == AutoOp::autocontrast);
  // TranslateX at bin 9 on a 32-wide image: 150 / 331 * 32 = 14.5 -> 14 whole pixels, either way.
  const Pixels row = ramp(32, 1, 1);
  Pixels right = row, left = row;
  apply_auto_op(right.data(), 1, 32, AutoOp::translate_x, 9, false);
  apply_auto_op(left.data(), 1, 32, AutoOp::translate_x, 9, true);
  for (index_t x = 0; x < 32; ++x) {
    CHECK(right[std::size_t(x)] == (x >= 14 ? row[std::size_t(x - 14)] : 0));
    CHECK(left[std::size_t(x)] == (x + 14 < 32 ? row[std::size_t(x + 14)] : 0));
  }
  // Posterize bin 7 keeps 5 bits; solarize bin 9 has threshold 0 (all inverted), bin 0 threshold 255.
  Pixels p{7, 100, 255};
  apply_auto_op(p.data(), 1, 3, AutoOp::posterize, 7, false);
  CHECK(p == Pixels{0, 96, 248});
  p = {7, 100, 255};
  apply_auto_op(p.data(), 1, 3, AutoOp::solarize, 9, false);
  CHECK(p == Pixels{248, 155, 0});
  p = {7, 100, 255};
  apply_auto_op(p.data(), 1, 3, AutoOp::solarize, 0, false);
  CHECK(p == Pixels{7, 100, 0});
  // Enhancements at 1 +- 0.9 * bin / 9; colour leaves a gray image alone.
  Pixels a{0, 100}, b{0, 100};
  apply_auto_op(a.data(), 1, 2, AutoOp::contrast, 9, true);
  image::contrast(b.data(), 2, 1.0 - 0.9);
  CHECK(a == b);
  a = {10, 100};
  apply_auto_op(a.data(), 1, 2, AutoOp::color, 9, false);
  CHECK(a == Pixels{10, 100});
  a = {10, 100};
  apply_auto_op(a.data(), 1, 2, AutoOp::brightness, 0, true);  // bin 0: factor 1
  CHECK(a == Pixels{10, 100});
  CHECK_THROWS_WITH_AS(apply_auto_op(a.data(), 1, 2, AutoOp::invert, 10, false), doctest::Contains("bin"), Error);
}

TEST_CASE("augment draws: the staged operations' ranges and rates, and the original draws unchanged") {
  const AugmentOptions plain{.translate = 2, .flip = 0.5, .cutout = 3, .seed = 9};
  AugmentOptions all = plain;
  all.vflip = 0.25;
  all.rotate = 10;
  all.shift = 0.1;
  all.scale_min = 0.9;
  all.scale_max = 1.1;
  all.shear = 10;
  all.autoaugment = all.photometric = true;
  std::set<double> shifts;
  std::vector<index_t> policies(25, 0);
  index_t vflips = 0, first_on_1 = 0, of_1 = 0, autocontrasts = 0;
  const index_t n = 20000;
  for (index_t i = 0; i < n; ++i) {
    const AugmentDraw a = draw_augment(plain, 32, 32, 1, i), b = draw_augment(all, 32, 32, 1, i);
    CHECK((a.dy == b.dy && a.dx == b.dx && a.flip == b.flip && a.cy == b.cy && a.cx == b.cx));
    CHECK_FALSE(a.warp);
    CHECK(a.policy == -1);
    REQUIRE(b.warp);
    CHECK(std::abs(b.affine.angle) <= 10);
    CHECK(b.affine.scale >= 0.9);
    CHECK(b.affine.scale <= 1.1);
    CHECK(std::abs(b.affine.shear_x) <= 10);
    CHECK(b.affine.shear_y == 0);
    CHECK(b.affine.cx == 16);
    shifts.insert(b.affine.tx);
    vflips += b.vflip;
    REQUIRE(b.policy >= 0);
    REQUIRE(b.policy < 25);
    ++policies[std::size_t(b.policy)];
    if (b.policy == 1) {
      ++of_1;
      first_on_1 += b.policy_on[0];
    }
    autocontrasts += b.extra_on[3];
    CHECK(b.extra_magnitude[1] >= 1.0);
    CHECK(b.extra_magnitude[1] < 1.9);
    CHECK(int(b.extra_magnitude[5]) <= 6);
  }
  CHECK(shifts == std::set<double>{-3, -2, -1, 0, 1, 2, 3});  // 0.1 * 32 = 3.2 -> whole pixels
  CHECK(double(vflips) / double(n) == doctest::Approx(0.25).epsilon(0.06));
  for (index_t c : policies) CHECK(c > n / 25 * 8 / 10);
  CHECK(double(first_on_1) / double(of_1) == doctest::Approx(0.7).epsilon(0.08));  // sub-policy 1: rotate at 0.7
  CHECK(double(autocontrasts) / double(n) == doctest::Approx(0.2).epsilon(0.06));
}

TEST_CASE("augment policies: lra2025-image and lra2025-pathfinder, the spec round trip, and refusals") {
  const AugmentOptions im = parse_augment("lra2025-image");
  CHECK(im.flip == 0.5);
  CHECK(im.vflip == 0);
  CHECK(im.autoaugment);
  CHECK(im.photometric);
  CHECK(im.rotate == 10);
  CHECK(im.shift == 0.1);
  CHECK(im.scale_min == 0.9);
  CHECK(im.scale_max == 1.1);
  CHECK(im.shear == 10);
  CHECK(im.resample == image::Resample::bilinear);
  CHECK(im.translate == 0);
  CHECK(im.cutout == 0);
  const AugmentOptions pf = parse_augment("lra2025-pathfinder");
  CHECK(pf.flip == 0.5);
  CHECK(pf.vflip == 0.5);
  CHECK_FALSE(pf.autoaugment);
  CHECK_FALSE(pf.photometric);
  CHECK(pf.shear == 0);
  CHECK(pf.resample == image::Resample::nearest);
  CHECK(parse_augment("lra2025-image,shear=0,resample=nearest").shear == 0);
  for (const auto* spec : {"lra2025-image", "lra2025-pathfinder", "vflip=0.3,rotate=5,scale=0.8:1.25,photometric"}) {
    const auto o = parse_augment(spec);
    const auto back = parse_augment(augment_spec(o));
    CHECK(augment_spec(back) == augment_spec(o));
    CHECK(back.rotate == o.rotate);
    CHECK(back.shift == o.shift);
    CHECK(back.scale_min == o.scale_min);
    CHECK(back.scale_max == o.scale_max);
    CHECK(back.resample == o.resample);
    CHECK(back.autoaugment == o.autoaugment);
  }
  CHECK(augment_spec(pf) == "flip=0.5,vflip=0.5,rotate=10,shift=0.1,scale=0.9:1.1");
  CHECK(parse_augment("vflip").vflip == 0.5);
  CHECK(parse_augment("autoaugment=cifar10").autoaugment);
  CHECK_THROWS_WITH_AS(parse_augment("flip,lra2025-image"), doctest::Contains("must come first"), Error);
  CHECK_THROWS_WITH_AS(parse_augment("rotate=200"), doctest::Contains("'rotate' is an angle in [0, 180]"), Error);
  CHECK_THROWS_WITH_AS(parse_augment("shift=1"), doctest::Contains("'shift' is a fraction"), Error);
  CHECK_THROWS_WITH_AS(parse_augment("scale=1.1:0.9"), doctest::Contains("MIN <= MAX"), Error);
  CHECK_THROWS_WITH_AS(parse_augment("scale=2"), doctest::Contains("'scale' needs MIN:MAX"), Error);
  CHECK_THROWS_WITH_AS(parse_augment("resample=cubic"), doctest::Contains("nearest or bilinear, got 'cubic'"), Error);
  CHECK_THROWS_WITH_AS(parse_augment("autoaugment=imagenet"), doctest::Contains("CIFAR-10 policy only"), Error);
  CHECK_THROWS_WITH_AS(parse_augment("photometric=1"), doctest::Contains("takes no value"), Error);
  CHECK_THROWS_WITH_AS(parse_augment("vflip=-0.5"), doctest::Contains("'vflip' is a probability"), Error);
  CHECK_THROWS_WITH_AS(check_augment({.vflip = 2}, 8, 8), doctest::Contains("vflip = 2"), Error);
  AugmentOptions bad;
  bad.scale_min = 0;
  CHECK_THROWS_WITH_AS(check_augment(bad, 8, 8), doctest::Contains("scale = 0:1"), Error);
  CHECK_NOTHROW(check_augment(im, 32, 32));
}

TEST_CASE("augment batch, staged: flips first, then the warp, per (seed, epoch, image); values follow the pixels") {
  const Dataset d = images(8, 6, 5);
  AugmentOptions o = parse_augment("lra2025-pathfinder,translate=1,cutout=2");
  o.seed = 4;
  const std::vector<index_t> idx{0, 3, 5, 6};
  Batch a = make_batch(d, idx), plain = make_batch(d, idx), again = make_batch(d, idx), later = make_batch(d, idx);
  augment_batch(a, o, d.info(), 2);
  augment_batch(again, o, d.info(), 2);
  augment_batch(later, o, d.info(), 3);
  CHECK(a.ids == again.ids);
  CHECK(a.ids != later.ids);
  CHECK(a.labels == plain.labels);
  const index_t L = 30;
  for (index_t r = 0; r < 4; ++r) {
    const AugmentDraw dr = draw_augment(o, 6, 5, 2, idx[std::size_t(r)]);
    // By hand: the intensities through the flips and the warp, then augment_image's shift and cutout, unflipped.
    Pixels img(plain.ids.begin() + r * L, plain.ids.begin() + (r + 1) * L);
    if (dr.flip) image::hflip(img.data(), 6, 5);
    if (dr.vflip) image::vflip(img.data(), 6, 5);
    image::affine(img.data(), 6, 5, dr.affine, image::Resample::nearest);
    std::vector<std::int32_t> ids(img.begin(), img.end());
    std::vector<float> values;
    for (auto v : img) values.push_back(d.info().norm(v));
    AugmentDraw rest = dr;
    rest.flip = false;
    augment_image(ids.data(), values.data(), 6, 5, rest, 2, d.info().norm);
    CHECK(ids == std::vector<std::int32_t>(a.ids.begin() + r * L, a.ids.begin() + (r + 1) * L));
    CHECK(values == std::vector<float>(a.values.begin() + r * L, a.values.begin() + (r + 1) * L));
  }
  // A spec without staged operations keeps the original order and draws (checked in augment.cpp); the image
  // policy runs on a batch too.
  Batch c = make_batch(d, idx);
  AugmentOptions img = parse_augment("lra2025-image");
  img.seed = 4;
  augment_batch(c, img, d.info(), 0);
  for (std::size_t k = 0; k < c.ids.size(); ++k) {
    CHECK(c.ids[k] >= 0);
    CHECK(c.ids[k] <= 255);
    CHECK(c.values[k] == d.info().norm(std::uint8_t(c.ids[k])));
  }
}
