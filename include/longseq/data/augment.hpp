// Image augmentations for pixel tasks whose images are flattened row-major to sequences (grayscale: one
// value per position): random translation (pad, then crop back at a random offset), horizontal flip and
// cutout (a square set to black). Miralles-Gonzalez et al. 2025 train their image models with
// augmentations of this kind (translations and flips among them, AutoAugment-style) to offset the data
// inefficiency of large models; those that keep meaning on a grayscale image are here. Every draw depends
// only on (seed, epoch, example), so a resumed or data-parallel run sees the same images.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/rng.hpp"
#include "batching.hpp"
#include "dataset.hpp"

namespace longseq::data {

struct AugmentOptions {
  index_t translate = 0;  // pad every side by this many pixels and crop back: shifts in [-t, t] per axis
  double flip = 0;        // probability of mirroring left and right
  index_t cutout = 0;     // side of a black square at a random centre (clipped at the border; 0: off)
  std::uint64_t seed = 0;
  bool enabled() const { return translate > 0 || flip > 0 || cutout > 0; }
};

// "none" or a comma-separated list of translate=T, flip[=P] (P defaults to 0.5) and cutout=S, e.g.
// "translate=2,flip". An unknown name or a malformed number is refused naming the spec.
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
  while (std::getline(ss, item, ',')) {
    const auto eq = item.find('=');
    const std::string key = item.substr(0, eq), val = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (key == "translate") {
      o.translate = whole(key, val);
    } else if (key == "cutout") {
      o.cutout = whole(key, val);
    } else if (key == "flip") {
      o.flip = eq == std::string::npos ? 0.5 : number(key, val);
      LONGSEQ_CHECK(o.flip >= 0 && o.flip <= 1, "augment spec '", spec, "': 'flip' is a probability in [0, 1], got ",
                    val);
    } else {
      LONGSEQ_FAIL("augment spec '", spec, "': unknown augmentation '", key,
                   "' (expected none, or a list of translate=T, flip[=P], cutout=S)");
    }
  }
  return o;
}

// The spec parse_augment reads back to the same options ("none" when off).
inline std::string augment_spec(const AugmentOptions& o) {
  if (!o.enabled()) return "none";
  std::ostringstream s;
  const char* sep = "";
  if (o.translate > 0) { s << sep << "translate=" << o.translate; sep = ","; }
  if (o.flip > 0) { s << sep << "flip=" << o.flip; sep = ","; }
  if (o.cutout > 0) { s << sep << "cutout=" << o.cutout; }
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
}

// What is done to one image: the shift (output (y, x) reads input (y - dy, x - dx)), the flip, and the
// cutout's centre (cy < 0: none).
struct AugmentDraw {
  index_t dy = 0, dx = 0;
  bool flip = false;
  index_t cy = -1, cx = -1;
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
  return d;
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
    const AugmentDraw d = draw_augment(o, info.height, info.width, epoch, b.indices[std::size_t(r)]);
    augment_image(b.ids.data() + r * b.length, b.values.data() + r * b.length, info.height, info.width, d, o.cutout,
                  info.norm);
  }
}

}  // namespace longseq::data
