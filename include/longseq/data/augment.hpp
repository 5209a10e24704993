// Image augmentations for pixel tasks whose images are flattened row-major to sequences (grayscale: one
// value per position): random translation (pad, then crop back at a random offset), horizontal and vertical
// flips, cutout (a square set to black), a random affine warp (rotation, shift, zoom, shear), AutoAugment's
// CIFAR-10 policy and the extra random colour operations of Miralles-Gonzalez et al. 2025. Their settings
// are named policies: "lra2025-image" and "lra2025-pathfinder" are the transforms of their CIFAR-10 and
// Pathfinder loaders (long-transformers, src/data_loaders/cifar10.py and pathfinder.py). Every draw depends
// only on (seed, epoch, example), so a resumed or data-parallel run sees the same images.
#pragma once
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/rng.hpp"
#include "batching.hpp"
#include "dataset.hpp"
#include "image_ops.hpp"

namespace longseq::data {

struct AugmentOptions {
  index_t translate = 0;  // pad every side by this many pixels and crop back: shifts in [-t, t] per axis
  double flip = 0;        // probability of mirroring left and right
  index_t cutout = 0;     // side of a black square at a random centre (clipped at the border; 0: off)
  double vflip = 0;       // probability of mirroring top and bottom
  // The random affine warp about the image centre (torchvision's RandomAffine): angle uniform in
  // [-rotate, rotate] degrees, shift per axis round(U(-shift, shift) * size) pixels, zoom uniform in
  // [scale_min, scale_max], horizontal shear angle uniform in [-shear, shear] degrees.
  double rotate = 0, shift = 0, scale_min = 1, scale_max = 1, shear = 0;
  image::Resample resample = image::Resample::nearest;  // of the affine warp
  bool autoaugment = false;  // AutoAugment's CIFAR-10 policy (torchvision's table and magnitudes)
  bool photometric = false;  // the nine independent colour operations of Miralles-Gonzalez et al.
  std::uint64_t seed = 0;
  bool affine() const { return rotate > 0 || shift > 0 || scale_min != 1 || scale_max != 1 || shear > 0; }
  // Operations beyond shift, flip and cutout run first, on intensities, with the horizontal flip before them
  // (the order of the reference pipelines); without them the original order (shift, then flip) is kept.
  bool staged() const { return vflip > 0 || affine() || autoaugment || photometric; }
  bool enabled() const { return translate > 0 || flip > 0 || cutout > 0 || staged(); }
};

// The named policies: what Miralles-Gonzalez et al.'s loaders apply to a training image. CIFAR-10: horizontal
// flip (0.5), AutoAugment (CIFAR-10 policy), their colour operations, RandomAffine(10 degrees, shift 0.1,
// scale 0.9..1.1, shear 10, bilinear, black fill). Pathfinder: horizontal and vertical flips (0.5 each),
// RandomAffine(10 degrees, shift 0.1, scale 0.9..1.1, nearest, black fill). Their colour operations act on RGB
// before the conversion to gray; here the images are gray already, so saturation ("Color") changes nothing.
inline AugmentOptions augment_policy_lra2025_image() {
  AugmentOptions o;
  o.flip = 0.5;
  o.autoaugment = o.photometric = true;
  o.rotate = 10;
  o.shift = 0.1;
  o.scale_min = 0.9;
  o.scale_max = 1.1;
  o.shear = 10;
  o.resample = image::Resample::bilinear;
  return o;
}
inline AugmentOptions augment_policy_lra2025_pathfinder() {
  AugmentOptions o;
  o.flip = o.vflip = 0.5;
  o.rotate = 10;
  o.shift = 0.1;
  o.scale_min = 0.9;
  o.scale_max = 1.1;
  return o;
}

// "none", a named policy (lra2025-image, lra2025-pathfinder) or a comma-separated list of translate=T,
// flip[=P], vflip[=P] (P defaults to 0.5), cutout=S, rotate=DEG, shift=FRACTION, scale=MIN:MAX, shear=DEG,
// resample=nearest|bilinear, autoaugment[=cifar10] and photometric; a policy may start a list that changes some
// of its settings ("lra2025-image,shear=0"). An unknown name or a malformed number is refused naming the spec.
inline AugmentOptions parse_augment(const std::string& spec) {
  AugmentOptions o;
  if (spec.empty() || spec == "none") return o;
  std::stringstream ss(spec);
  std::string item;
  auto number = [&](const std::string& key, const std::string& text) {
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    LONGSEQ_CHECK(used == text.size() && !text.empty() && std::isfinite(v), "augment spec '", spec, "': '", key,
                  "' needs a number, got '", text, "'");
    return v;
  };
  auto whole = [&](const std::string& key, const std::string& text) {
    const double v = number(key, text);
    // Bounded before the conversion (a huge value would not fit index_t); the image's size bounds it further.
    LONGSEQ_CHECK(v >= 0 && v <= 1e6 && v == std::floor(v), "augment spec '", spec, "': '", key,
                  "' must be a whole number >= 0 (at most 1000000), got ", text);
    return index_t(v);
  };
  auto within = [&](const std::string& key, const std::string& text, double lo, double hi, const char* what) {
    const double v = number(key, text);
    LONGSEQ_CHECK(v >= lo && v <= hi, "augment spec '", spec, "': '", key, "' is ", what, ", got ", text);
    return v;
  };
  auto probability = [&](const std::string& key, const std::string& text, bool given) {
    return given ? within(key, text, 0, 1, "a probability in [0, 1]") : 0.5;
  };
  bool first = true;
  while (std::getline(ss, item, ',')) {
    const auto eq = item.find('=');
    const bool given = eq != std::string::npos;
    const std::string key = item.substr(0, eq), val = given ? item.substr(eq + 1) : "";
    if (key == "lra2025-image" || key == "lra2025-pathfinder") {
      LONGSEQ_CHECK(first && !given, "augment spec '", spec, "': the policy '", key, "' must come first, without a value");
      o = key == "lra2025-image" ? augment_policy_lra2025_image() : augment_policy_lra2025_pathfinder();
    } else if (key == "translate") {
      o.translate = whole(key, val);
    } else if (key == "cutout") {
      o.cutout = whole(key, val);
    } else if (key == "flip") {
      o.flip = probability(key, val, given);
    } else if (key == "vflip") {
      o.vflip = probability(key, val, given);
    } else if (key == "rotate") {
      o.rotate = within(key, val, 0, 180, "an angle in [0, 180] degrees");
    } else if (key == "shift") {
      o.shift = within(key, val, 0, 0.99, "a fraction of the image in [0, 0.99]");
    } else if (key == "shear") {
      o.shear = within(key, val, 0, 60, "an angle in [0, 60] degrees");
    } else if (key == "scale") {
      const auto colon = val.find(':');
      LONGSEQ_CHECK(colon != std::string::npos, "augment spec '", spec, "': 'scale' needs MIN:MAX, got '", val, "'");
      o.scale_min = within(key, val.substr(0, colon), 0.01, 100, "a zoom range MIN:MAX within [0.01, 100]");
      o.scale_max = within(key, val.substr(colon + 1), 0.01, 100, "a zoom range MIN:MAX within [0.01, 100]");
      LONGSEQ_CHECK(o.scale_min <= o.scale_max, "augment spec '", spec, "': 'scale' needs MIN <= MAX, got ", val);
    } else if (key == "resample") {
      LONGSEQ_CHECK(val == "nearest" || val == "bilinear", "augment spec '", spec,
                    "': 'resample' is nearest or bilinear, got '", val, "'");
      o.resample = val == "nearest" ? image::Resample::nearest : image::Resample::bilinear;
    } else if (key == "autoaugment") {
      LONGSEQ_CHECK(!given || val == "cifar10", "augment spec '", spec,
                    "': 'autoaugment' has the CIFAR-10 policy only, got '", val, "'");
      o.autoaugment = true;
    } else if (key == "photometric") {
      LONGSEQ_CHECK(!given, "augment spec '", spec, "': 'photometric' takes no value, got '", val, "'");
      o.photometric = true;
    } else {
      LONGSEQ_FAIL("augment spec '", spec, "': unknown augmentation '", key,
                   "' (expected none, lra2025-image, lra2025-pathfinder, or a list of translate=T, flip[=P], "
                   "vflip[=P], cutout=S, rotate=DEG, shift=F, scale=MIN:MAX, shear=DEG, resample=nearest|bilinear, "
                   "autoaugment, photometric)");
    }
    first = false;
  }
  return o;
}

// The spec parse_augment reads back to the same options ("none" when off).
inline std::string augment_spec(const AugmentOptions& o) {
  if (!o.enabled()) return "none";
  std::ostringstream s;
  // Shortest text that reads back to the same double (0.1, not 0.10000000000000001).
  auto num = [](double v) {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
  };
  const char* sep = "";
  auto put = [&](auto&&... parts) {
    s << sep;
    (s << ... << parts);
    sep = ",";
  };
  if (o.translate > 0) put("translate=", o.translate);
  if (o.flip > 0) put("flip=", num(o.flip));
  if (o.vflip > 0) put("vflip=", num(o.vflip));
  if (o.cutout > 0) put("cutout=", o.cutout);
  if (o.rotate > 0) put("rotate=", num(o.rotate));
  if (o.shift > 0) put("shift=", num(o.shift));
  if (o.scale_min != 1 || o.scale_max != 1) put("scale=", num(o.scale_min), ":", num(o.scale_max));
  if (o.shear > 0) put("shear=", num(o.shear));
  if (o.resample != image::Resample::nearest) put("resample=bilinear");
  if (o.autoaugment) put("autoaugment");
  if (o.photometric) put("photometric");
  return s.str();
}

// Options that fit an image of height x width: a shift must leave some of the image, a cutout must be
// smaller than the image.
inline void check_augment(const AugmentOptions& o, index_t height, index_t width) {
  if (!o.enabled()) return;
  LONGSEQ_CHECK(height > 0 && width > 0, "augment: the dataset has no image size (height ", height, ", width ",
                width, "); augmentations apply to image tasks only");
  LONGSEQ_CHECK(o.translate >= 0 && o.translate < std::min(height, width), "augment: translate = ", o.translate,
                " must be smaller than the image (", height, " x ", width, ")");
  LONGSEQ_CHECK(o.cutout >= 0 && o.cutout < std::min(height, width), "augment: cutout = ", o.cutout,
                " must be smaller than the image (", height, " x ", width, ")");
  LONGSEQ_CHECK(o.flip >= 0 && o.flip <= 1, "augment: flip = ", o.flip, ", expected a probability in [0, 1]");
  LONGSEQ_CHECK(o.vflip >= 0 && o.vflip <= 1, "augment: vflip = ", o.vflip, ", expected a probability in [0, 1]");
  LONGSEQ_CHECK(o.rotate >= 0 && o.rotate <= 180, "augment: rotate = ", o.rotate, ", expected [0, 180] degrees");
  LONGSEQ_CHECK(o.shift >= 0 && o.shift < 1, "augment: shift = ", o.shift, ", expected a fraction in [0, 1)");
  LONGSEQ_CHECK(o.scale_min > 0 && o.scale_min <= o.scale_max && std::isfinite(o.scale_max), "augment: scale = ",
                o.scale_min, ":", o.scale_max, ", expected 0 < MIN <= MAX");
  LONGSEQ_CHECK(o.shear >= 0 && o.shear <= 60, "augment: shear = ", o.shear, ", expected [0, 60] degrees");
}

// AutoAugment's CIFAR-10 policy (Cubuk et al. 2019, as torchvision tabulates it): 25 sub-policies of two
// operations, each applied with its probability at a magnitude bin 0..9.
enum class AutoOp { invert, contrast, rotate, translate_x, translate_y, sharpness, shear_x, shear_y, autocontrast,
                    equalize, posterize, color, brightness, solarize };
struct AutoStep {
  AutoOp op;
  double p;
  int bin;
};
inline constexpr std::array<std::array<AutoStep, 2>, 25> autoaugment_cifar10{{
    {{{AutoOp::invert, 0.1, 0}, {AutoOp::contrast, 0.2, 6}}},
    {{{AutoOp::rotate, 0.7, 2}, {AutoOp::translate_x, 0.3, 9}}},
    {{{AutoOp::sharpness, 0.8, 1}, {AutoOp::sharpness, 0.9, 3}}},
    {{{AutoOp::shear_y, 0.5, 8}, {AutoOp::translate_y, 0.7, 9}}},
    {{{AutoOp::autocontrast, 0.5, 0}, {AutoOp::equalize, 0.9, 0}}},
    {{{AutoOp::shear_y, 0.2, 7}, {AutoOp::posterize, 0.3, 7}}},
    {{{AutoOp::color, 0.4, 3}, {AutoOp::brightness, 0.6, 7}}},
    {{{AutoOp::sharpness, 0.3, 9}, {AutoOp::brightness, 0.7, 9}}},
    {{{AutoOp::equalize, 0.6, 0}, {AutoOp::equalize, 0.5, 0}}},
    {{{AutoOp::contrast, 0.6, 7}, {AutoOp::sharpness, 0.6, 5}}},
    {{{AutoOp::color, 0.7, 7}, {AutoOp::translate_x, 0.5, 8}}},
    {{{AutoOp::equalize, 0.3, 0}, {AutoOp::autocontrast, 0.4, 0}}},
    {{{AutoOp::translate_y, 0.4, 3}, {AutoOp::sharpness, 0.2, 6}}},
    {{{AutoOp::brightness, 0.9, 6}, {AutoOp::color, 0.2, 8}}},
    {{{AutoOp::solarize, 0.5, 2}, {AutoOp::invert, 0.0, 0}}},
    {{{AutoOp::equalize, 0.2, 0}, {AutoOp::autocontrast, 0.6, 0}}},
    {{{AutoOp::equalize, 0.2, 0}, {AutoOp::equalize, 0.6, 0}}},
    {{{AutoOp::color, 0.9, 9}, {AutoOp::equalize, 0.6, 0}}},
    {{{AutoOp::autocontrast, 0.8, 0}, {AutoOp::solarize, 0.2, 8}}},
    {{{AutoOp::brightness, 0.1, 3}, {AutoOp::color, 0.7, 0}}},
    {{{AutoOp::solarize, 0.4, 5}, {AutoOp::autocontrast, 0.9, 0}}},
    {{{AutoOp::translate_y, 0.9, 9}, {AutoOp::translate_y, 0.7, 9}}},
    {{{AutoOp::autocontrast, 0.9, 0}, {AutoOp::solarize, 0.8, 3}}},
    {{{AutoOp::equalize, 0.8, 0}, {AutoOp::invert, 0.1, 0}}},
    {{{AutoOp::translate_y, 0.7, 9}, {AutoOp::autocontrast, 0.9, 0}}},
}};

// Applies one AutoAugment operation at magnitude bin `bin` (of 10), negated when `negative` (the signed
// operations only). Magnitudes: shear tan 0..0.3 about the top-left corner, translation 0..150/331 of the
// size (truncated to whole pixels), rotation 0..30 degrees about the centre, enhancement factors 1 +- 0..0.9,
// posterize 8,8,7,7,6,6,5,5,4,4 bits, solarize thresholds 255..0; geometric ones nearest, black fill.
inline void apply_auto_op(std::uint8_t* img, index_t height, index_t width, AutoOp op, int bin, bool negative) {
  LONGSEQ_CHECK(bin >= 0 && bin <= 9, "AutoAugment: magnitude bin must be in [0, 9], got ", bin);
  const double t = double(bin) / 9.0, sign = negative ? -1.0 : 1.0;
  static constexpr std::array<int, 10> posterize_bits{8, 8, 7, 7, 6, 6, 5, 5, 4, 4};
  const index_t pixels = height * width;
  image::Affine a;
  switch (op) {
    case AutoOp::shear_x: a.shear_x = sign * std::atan(0.3 * t) * 180.0 / std::numbers::pi; break;
    case AutoOp::shear_y: a.shear_y = sign * std::atan(0.3 * t) * 180.0 / std::numbers::pi; break;
    case AutoOp::translate_x: a.tx = std::trunc(sign * 150.0 / 331.0 * double(width) * t); break;
    case AutoOp::translate_y: a.ty = std::trunc(sign * 150.0 / 331.0 * double(height) * t); break;
    // Pillow's rotate turns counter-clockwise, our angle clockwise.
    case AutoOp::rotate: a = {.cx = 0.5 * double(width), .cy = 0.5 * double(height), .angle = -sign * 30.0 * t}; break;
    case AutoOp::brightness: image::brightness(img, pixels, 1.0 + sign * 0.9 * t); return;
    case AutoOp::color: return;  // saturation: nothing to change on a gray image
    case AutoOp::contrast: image::contrast(img, pixels, 1.0 + sign * 0.9 * t); return;
    case AutoOp::sharpness: image::sharpness(img, height, width, 1.0 + sign * 0.9 * t); return;
    case AutoOp::posterize: image::posterize(img, pixels, posterize_bits[std::size_t(bin)]); return;
    case AutoOp::solarize: image::solarize(img, pixels, 255.0 * (1.0 - t)); return;
    case AutoOp::autocontrast: image::autocontrast(img, pixels); return;
    case AutoOp::equalize: image::equalize(img, pixels); return;
    case AutoOp::invert: image::invert(img, pixels); return;
  }
  image::affine(img, height, width, a, image::Resample::nearest);
}

// Miralles-Gonzalez et al.'s extra colour operations (their RandomCifar10Augmentator): each applied
// independently with its probability, in this order; enhancement factors uniform in [1, 1.9], posterize
// bits int(U(0, 7)), solarize threshold U(0, 256).
enum class ExtraOp { invert, contrast, sharpness, autocontrast, equalize, posterize, color, brightness, solarize };
struct ExtraStep {
  ExtraOp op;
  double p, lo, hi;  // probability and magnitude range
};
inline constexpr std::array<ExtraStep, 9> photometric_ops{{
    {ExtraOp::invert, 0.008, 0, 0},
    {ExtraOp::contrast, 0.032, 1.0, 1.9},
    {ExtraOp::sharpness, 0.112, 1.0, 1.9},
    {ExtraOp::autocontrast, 0.2, 0, 0},
    {ExtraOp::equalize, 0.188, 0, 0},
    {ExtraOp::posterize, 0.012, 0, 7},
    {ExtraOp::color, 0.116, 1.0, 1.9},
    {ExtraOp::brightness, 0.092, 1.0, 1.9},
    {ExtraOp::solarize, 0.076, 0, 256},
}};

inline void apply_extra_op(std::uint8_t* img, index_t height, index_t width, ExtraOp op, double magnitude) {
  const index_t n = height * width;
  switch (op) {
    case ExtraOp::invert: image::invert(img, n); break;
    case ExtraOp::contrast: image::contrast(img, n, magnitude); break;
    case ExtraOp::sharpness: image::sharpness(img, height, width, magnitude); break;
    case ExtraOp::autocontrast: image::autocontrast(img, n); break;
    case ExtraOp::equalize: image::equalize(img, n); break;
    case ExtraOp::posterize: image::posterize(img, n, int(magnitude)); break;
    case ExtraOp::color: break;  // saturation: nothing to change on a gray image
    case ExtraOp::brightness: image::brightness(img, n, magnitude); break;
    case ExtraOp::solarize: image::solarize(img, n, magnitude); break;
  }
}

// What is done to one image: the shift (output (y, x) reads input (y - dy, x - dx)), the flips, the cutout's
// centre (cy < 0: none), the affine warp, the AutoAugment sub-policy (-1: none) with which of its two steps run
// and their signs, and which colour operations run at what magnitude.
struct AugmentDraw {
  index_t dy = 0, dx = 0;
  bool flip = false;
  index_t cy = -1, cx = -1;
  bool vflip = false;
  bool warp = false;
  image::Affine affine{};
  int policy = -1;
  std::array<bool, 2> policy_on{}, policy_negative{};
  std::array<bool, 9> extra_on{};
  std::array<double, 9> extra_magnitude{};
};

// The draw of (epoch, example), always in the same order (shift, flip, cutout) from its own Philox stream, so
// one augmentation's setting does not change the others' draws. The seed is salted: the masks of the same
// (seed, epoch, example) use the plain one.
inline AugmentDraw draw_augment(const AugmentOptions& o, index_t height, index_t width, index_t epoch,
                                index_t example) {
  Rng rng(o.seed ^ 0x61756720696D6167ull, (std::uint64_t(epoch) << 32) | std::uint32_t(example));
  AugmentDraw d;
  const auto span = std::uint64_t(2 * o.translate + 1);
  d.dy = index_t(rng.below(span)) - o.translate;
  d.dx = index_t(rng.below(span)) - o.translate;
  d.flip = double(rng.uniform()) < o.flip;
  const index_t cy = index_t(rng.below(std::uint64_t(height))), cx = index_t(rng.below(std::uint64_t(width)));
  if (o.cutout > 0) {
    d.cy = cy;
    d.cx = cx;
  }
  // Drawn after the original four, all of them whatever the options, so the earlier draws keep their values.
  d.vflip = double(rng.uniform()) < o.vflip;
  const double ua = rng.uniform(), ux = rng.uniform(), uy = rng.uniform(), us = rng.uniform(), uh = rng.uniform();
  if (o.affine()) {
    d.warp = true;
    d.affine.cx = 0.5 * double(width);
    d.affine.cy = 0.5 * double(height);
    d.affine.angle = o.rotate * (2 * ua - 1);
    // Whole pixels, rounded half to even as Python's round.
    d.affine.tx = std::nearbyint(o.shift * double(width) * (2 * ux - 1));
    d.affine.ty = std::nearbyint(o.shift * double(height) * (2 * uy - 1));
    d.affine.scale = o.scale_min + (o.scale_max - o.scale_min) * us;
    d.affine.shear_x = o.shear * (2 * uh - 1);
  }
  const int policy = int(rng.below(autoaugment_cifar10.size()));
  std::array<double, 2> up{};
  std::array<bool, 2> neg{};
  for (int i = 0; i < 2; ++i) {
    up[std::size_t(i)] = rng.uniform();
    neg[std::size_t(i)] = rng.below(2) == 0;
  }
  if (o.autoaugment) {
    d.policy = policy;
    for (std::size_t i = 0; i < 2; ++i) {
      d.policy_on[i] = up[i] <= autoaugment_cifar10[std::size_t(policy)][i].p;
      d.policy_negative[i] = neg[i];
    }
  }
  for (std::size_t i = 0; i < photometric_ops.size(); ++i) {
    const double u = rng.uniform(), m = rng.uniform();
    if (!o.photometric) continue;
    d.extra_on[i] = u < photometric_ops[i].p;
    d.extra_magnitude[i] = photometric_ops[i].lo + (photometric_ops[i].hi - photometric_ops[i].lo) * m;
  }
  return d;
}

// The staged operations on one image of intensities, in the reference pipelines' order: horizontal flip,
// vertical flip, AutoAugment, the colour operations, the affine warp (shift and cutout follow, in augment_image).
inline void augment_intensities(std::uint8_t* img, index_t height, index_t width, const AugmentDraw& d,
                                image::Resample resample) {
  if (d.flip) image::hflip(img, height, width);
  if (d.vflip) image::vflip(img, height, width);
  if (d.policy >= 0)
    for (std::size_t i = 0; i < 2; ++i) {
      const auto& step = autoaugment_cifar10[std::size_t(d.policy)][i];
      if (d.policy_on[i]) apply_auto_op(img, height, width, step.op, step.bin, d.policy_negative[i]);
    }
  for (std::size_t i = 0; i < photometric_ops.size(); ++i)
    if (d.extra_on[i]) apply_extra_op(img, height, width, photometric_ops[i].op, d.extra_magnitude[i]);
  if (d.warp) image::affine(img, height, width, d.affine, resample);
}

// Applies `d` to one image of height x width: intensities (0..255, the CE targets) and normalized values
// side by side; pixels shifted in from outside and the cutout are black (intensity 0, value norm(0)). The
// flip mirrors the shifted image; the cutout is drawn on the result.
inline void augment_image(std::int32_t* ids, float* values, index_t height, index_t width, const AugmentDraw& d,
                          index_t cutout, const PixelNorm& norm) {
  const index_t n = height * width;
  const float black = norm(0);
  std::vector<std::int32_t> src_ids(ids, ids + n);
  std::vector<float> src_values(values, values + n);
  for (index_t y = 0; y < height; ++y)
    for (index_t x = 0; x < width; ++x) {
      const index_t xs = (d.flip ? width - 1 - x : x) - d.dx, ys = y - d.dy;
      const bool inside = ys >= 0 && ys < height && xs >= 0 && xs < width;
      const index_t k = y * width + x;
      ids[k] = inside ? src_ids[std::size_t(ys * width + xs)] : 0;
      values[k] = inside ? src_values[std::size_t(ys * width + xs)] : black;
    }
  if (d.cy < 0 || cutout <= 0) return;
  // A square of side `cutout` whose centre is (cy, cx): rows cy - cutout / 2 .. + cutout - 1, clipped.
  const index_t y0 = std::max<index_t>(0, d.cy - cutout / 2), y1 = std::min(height, d.cy - cutout / 2 + cutout);
  const index_t x0 = std::max<index_t>(0, d.cx - cutout / 2), x1 = std::min(width, d.cx - cutout / 2 + cutout);
  for (index_t y = y0; y < y1; ++y)
    for (index_t x = x0; x < x1; ++x) {
      ids[y * width + x] = 0;
      values[y * width + x] = black;
    }
}

// Augments every image of a pixel batch in place; example b's draw is keyed by (epoch, b.indices[r]), so it
// does not depend on the batch it falls in or on the number of ranks.
inline void augment_batch(Batch& b, const AugmentOptions& o, const TaskInfo& info, index_t epoch) {
  if (!o.enabled()) return;
  LONGSEQ_CHECK(b.modality == Modality::pixels, "augment: dataset '", info.name, "' holds tokens; augmentations "
                "apply to image tasks only");
  check_augment(o, info.height, info.width);
  const index_t n = info.height * info.width;
  LONGSEQ_CHECK(b.docs == 1, "augment: dataset '", info.name, "' has ", b.docs, " documents per example, expected 1");
  for (index_t r = 0; r < b.rows; ++r) {
    LONGSEQ_CHECK(b.lengths[std::size_t(r)] == n, "augment: image ", b.indices[std::size_t(r)], " of dataset '",
                  info.name, "' has ", b.lengths[std::size_t(r)], " pixels, expected ", info.height, " x ",
                  info.width, " = ", n);
    AugmentDraw d = draw_augment(o, info.height, info.width, epoch, b.indices[std::size_t(r)]);
    std::int32_t* ids = b.ids.data() + r * b.length;
    float* values = b.values.data() + r * b.length;
    if (o.staged()) {
      // Intensities through the staged operations, then the values recomputed from them.
      std::vector<std::uint8_t> img(static_cast<std::size_t>(n), 0);
      for (index_t k = 0; k < n; ++k) img[std::size_t(k)] = std::uint8_t(std::clamp(ids[k], 0, 255));
      augment_intensities(img.data(), info.height, info.width, d, o.resample);
      for (index_t k = 0; k < n; ++k) {
        ids[k] = img[std::size_t(k)];
        values[k] = info.norm(img[std::size_t(k)]);
      }
      d.flip = false;  // done first
    }
    augment_image(ids, values, info.height, info.width, d, o.cutout, info.norm);
  }
}

}  // namespace longseq::data
