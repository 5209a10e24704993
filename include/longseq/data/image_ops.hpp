// Operations on one grayscale image of 8-bit intensities (row-major, height x width), with the semantics of the
// Pillow operations torchvision applies to PIL images, so that an augmentation policy written for torchvision
// means the same here: an affine warp by inverse mapping of pixel centres (nearest or bilinear, black outside),
// the colour enhancements as a blend with a degenerate image (truncated to 0..255), autocontrast, equalize,
// posterize, solarize and invert.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "../core/error.hpp"
#include "dataset.hpp"

namespace longseq::data::image {

enum class Resample { nearest, bilinear };

// A warp about the point (cx, cy) (pixel corners at integers, so (width / 2, height / 2) is the image centre):
// rotation by `angle` degrees (clockwise on screen, y pointing down), shear angles in degrees along x and y,
// zoom `scale`, then a shift by (tx, ty) pixels; torchvision's RandomAffine / F.affine parameterization.
struct Affine {
  double cx = 0, cy = 0;
  double angle = 0, shear_x = 0, shear_y = 0, scale = 1;
  double tx = 0, ty = 0;
};

// The inverse map as 2 x 3 row-major: input point = M * (output point, 1). The rotation-shear matrix has
// determinant 1, so its inverse is its adjugate; dividing by the scale inverts the zoom.
inline std::array<double, 6> inverse_matrix(const Affine& a) {
  LONGSEQ_CHECK(a.scale > 0 && std::isfinite(a.scale), "image::affine: scale must be positive, got ", a.scale);
  const double deg = std::numbers::pi / 180.0;
  const double r = a.angle * deg, sx = a.shear_x * deg, sy = a.shear_y * deg;
  const double p = std::cos(r - sy) / std::cos(sy), q = -std::cos(r - sy) * std::tan(sx) / std::cos(sy) - std::sin(r);
  const double u = std::sin(r - sy) / std::cos(sy), v = -std::sin(r - sy) * std::tan(sx) / std::cos(sy) + std::cos(r);
  std::array<double, 6> m{v / a.scale, -q / a.scale, 0, -u / a.scale, p / a.scale, 0};
  // in = C + inv * (out - C - T)
  m[2] = a.cx - m[0] * (a.cx + a.tx) - m[1] * (a.cy + a.ty);
  m[5] = a.cy - m[3] * (a.cx + a.tx) - m[4] * (a.cy + a.ty);
  return m;
}

// Output pixel (x, y) reads the input at M * (x + 0.5, y + 0.5). Nearest takes the pixel containing that point;
// bilinear interpolates between the four nearest pixel centres (clamped at the border) and truncates. A point
// outside the image gives black (0), as Pillow's transform with fill 0.
inline void affine(std::uint8_t* img, index_t height, index_t width, const Affine& a, Resample resample) {
  const auto m = inverse_matrix(a);
  const std::vector<std::uint8_t> src(img, img + height * width);
  auto at = [&](index_t y, index_t x) { return double(src[std::size_t(y * width + x)]); };
  for (index_t y = 0; y < height; ++y)
    for (index_t x = 0; x < width; ++x) {
      const double ox = double(x) + 0.5, oy = double(y) + 0.5;
      const double u = m[0] * ox + m[1] * oy + m[2], v = m[3] * ox + m[4] * oy + m[5];
      std::uint8_t out = 0;
      if (u >= 0 && v >= 0 && u < double(width) && v < double(height)) {
        if (resample == Resample::nearest) {
          out = src[std::size_t(index_t(v) * width + index_t(u))];
        } else {
          const double fu = u - 0.5, fv = v - 0.5;
          const double x0 = std::floor(fu), y0 = std::floor(fv), dx = fu - x0, dy = fv - y0;
          auto clampx = [&](double c) { return std::clamp<index_t>(index_t(c), 0, width - 1); };
          auto clampy = [&](double c) { return std::clamp<index_t>(index_t(c), 0, height - 1); };
          const index_t xa = clampx(x0), xb = clampx(x0 + 1), ya = clampy(y0), yb = clampy(y0 + 1);
          const double top = at(ya, xa) + (at(ya, xb) - at(ya, xa)) * dx;
          const double bottom = at(yb, xa) + (at(yb, xb) - at(yb, xa)) * dx;
          out = std::uint8_t(std::clamp(top + (bottom - top) * dy, 0.0, 255.0));  // truncated, as Pillow
        }
      }
      img[y * width + x] = out;
    }
}

inline void hflip(std::uint8_t* img, index_t height, index_t width) {
  for (index_t y = 0; y < height; ++y) std::reverse(img + y * width, img + (y + 1) * width);
}

inline void vflip(std::uint8_t* img, index_t height, index_t width) {
  for (index_t y = 0; y < height / 2; ++y)
    std::swap_ranges(img + y * width, img + (y + 1) * width, img + (height - 1 - y) * width);
}

inline void invert(std::uint8_t* img, index_t n) {
  for (index_t k = 0; k < n; ++k) img[k] = std::uint8_t(255 - img[k]);
}

// Keeps the top `bits` bits of every intensity (0 bits: black).
inline void posterize(std::uint8_t* img, index_t n, int bits) {
  LONGSEQ_CHECK(bits >= 0 && bits <= 8, "image::posterize: bits must be in [0, 8], got ", bits);
  const auto keep = std::uint8_t(~((1u << (8 - bits)) - 1u) & 0xFFu);
  for (index_t k = 0; k < n; ++k) img[k] = std::uint8_t(img[k] & keep);
}

// Inverts every intensity at or above the threshold.
inline void solarize(std::uint8_t* img, index_t n, double threshold) {
  for (index_t k = 0; k < n; ++k)
    if (double(img[k]) >= threshold) img[k] = std::uint8_t(255 - img[k]);
}

// Stretches [darkest, brightest] to [0, 255] (truncated); a flat image is left alone.
inline void autocontrast(std::uint8_t* img, index_t n) {
  if (n == 0) return;
  const auto [lo_it, hi_it] = std::minmax_element(img, img + n);
  const int lo = *lo_it, hi = *hi_it;
  if (hi <= lo) return;
  const double scale = 255.0 / double(hi - lo), offset = -double(lo) * scale;
  for (index_t k = 0; k < n; ++k)
    img[k] = std::uint8_t(std::clamp(int(double(img[k]) * scale + offset), 0, 255));
}

// Histogram equalization, Pillow's rule: step = (pixels - count of the brightest level present) / 255 (integer),
// level i maps to (step / 2 + pixels below i) / step; no change when step is 0 or one level is present.
inline void equalize(std::uint8_t* img, index_t n) {
  std::array<index_t, 256> h{};
  for (index_t k = 0; k < n; ++k) ++h[img[k]];
  index_t levels = 0, last = 0;
  for (int i = 0; i < 256; ++i)
    if (h[std::size_t(i)] > 0) {
      ++levels;
      last = h[std::size_t(i)];
    }
  if (levels <= 1) return;
  const index_t step = (n - last) / 255;
  if (step == 0) return;
  std::array<std::uint8_t, 256> lut{};
  index_t acc = step / 2;
  for (int i = 0; i < 256; ++i) {
    lut[std::size_t(i)] = std::uint8_t(std::min<index_t>(acc / step, 255));
    acc += h[std::size_t(i)];
  }
  for (index_t k = 0; k < n; ++k) img[k] = lut[img[k]];
}

// degenerate + factor * (img - degenerate) in single precision, clipped to [0, 255] and truncated (Pillow's blend).
inline void blend(std::uint8_t* img, const std::uint8_t* degenerate, index_t n, double factor) {
  const float f = float(factor);
  for (index_t k = 0; k < n; ++k) {
    const float t = float(degenerate[k]) + f * float(int(img[k]) - int(degenerate[k]));
    img[k] = t <= 0.0f ? 0 : t >= 255.0f ? 255 : std::uint8_t(t);
  }
}

// Brightness: a blend with black.
inline void brightness(std::uint8_t* img, index_t n, double factor) {
  const std::vector<std::uint8_t> black(std::size_t(n), 0);
  blend(img, black.data(), n, factor);
}

// Contrast: a blend with the flat image of the mean intensity (rounded).
inline void contrast(std::uint8_t* img, index_t n, double factor) {
  if (n == 0) return;
  double sum = 0;
  for (index_t k = 0; k < n; ++k) sum += img[k];
  const std::vector<std::uint8_t> flat(std::size_t(n), std::uint8_t(int(sum / double(n) + 0.5)));
  blend(img, flat.data(), n, factor);
}

// Sharpness: a blend with the image smoothed by the 3 x 3 kernel (1 1 1; 1 5 1; 1 1 1) / 13 (rounded), whose
// border rows and columns are the image's own.
inline void sharpness(std::uint8_t* img, index_t height, index_t width, double factor) {
  const index_t n = height * width;
  std::vector<std::uint8_t> smooth(img, img + n);
  for (index_t y = 1; y + 1 < height; ++y)
    for (index_t x = 1; x + 1 < width; ++x) {
      int s = 4 * img[y * width + x];
      for (index_t dy = -1; dy <= 1; ++dy)
        for (index_t dx = -1; dx <= 1; ++dx) s += img[(y + dy) * width + x + dx];
      smooth[std::size_t(y * width + x)] = std::uint8_t(std::min(255.0f, std::floor(float(s) / 13.0f + 0.5f)));
    }
  blend(img, smooth.data(), n, factor);
}

}  // namespace longseq::data::image
