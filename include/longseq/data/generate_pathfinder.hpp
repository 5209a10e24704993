// Pathfinder-style image generator: two marked endpoints that are (label 1) or are not (label 0) the
// two ends of one dashed, smoothly curving contour, a second contour and short distractor paths.
// Writes pathfinderN/<difficulty>/{imgs/<k>/sample_<i>.png, metadata/<k>.npy} as the reader expects.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../core/rng.hpp"
#include "pathfinder.hpp"
#include "png.hpp"

namespace longseq::data {

struct PathfinderGenConfig {
  index_t resolution = 32;
  int contour_length = 14;     // dashes per contour (the release's hardest level is 14)
  double dash_length = 0;      // pixels per dash; 0: resolution / 16, at least 2
  double gap_length = 0;       // pixels between dashes; 0: dash_length / 2
  double max_turn = 0.6;       // largest change of direction between dashes (radians)
  int distractors = 2;         // short paths of contour_length / 3 dashes
  int marker_radius = 0;       // 0: resolution / 32, at least 1
  index_t images_per_folder = 1000;
  std::string difficulty = "curv_contour_length_14";
};

struct PathfinderSample {
  GrayImage image;
  std::int32_t label = 0;
};

namespace detail {
struct Pt {
  double x, y;
};

// A dashed random contour inside the image border: each dash is a straight piece; between dashes
// the direction turns by at most max_turn. Returns the dash end points (2 per dash), or nothing if
// the walk could not stay inside the image.
inline std::vector<Pt> random_contour(Rng& rng, double res, int dashes, double dash, double gap, double turn, double margin) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    Pt p{rng.uniform(margin, res - margin), rng.uniform(margin, res - margin)};
    double a = rng.uniform(0.0, 6.283185307179586);
    std::vector<Pt> pts;
    bool ok = true;
    for (int d = 0; d < dashes && ok; ++d) {
      ok = false;
      for (int k = 0; k < 20; ++k) {
        double b = a + rng.uniform(-turn, turn) * (1 + k / 5);
        Pt q{p.x + dash * std::cos(b), p.y + dash * std::sin(b)};
        Pt n{q.x + gap * std::cos(b), q.y + gap * std::sin(b)};
        auto inside = [&](Pt z) { return z.x >= margin && z.x <= res - margin && z.y >= margin && z.y <= res - margin; };
        if (inside(q) && (d + 1 == dashes || inside(n))) {
          pts.push_back(p);
          pts.push_back(q);
          p = n;
          a = b;
          ok = true;
          break;
        }
      }
    }
    if (ok) return pts;
  }
  return {};
}

inline void draw_segment(GrayImage& im, Pt a, Pt b) {
  double len = std::hypot(b.x - a.x, b.y - a.y);
  int steps = std::max(1, int(std::ceil(len * 2)));
  for (int s = 0; s <= steps; ++s) {
    double t = double(s) / steps;
    auto x = index_t(std::lround(a.x + t * (b.x - a.x))), y = index_t(std::lround(a.y + t * (b.y - a.y)));
    if (x >= 0 && y >= 0 && x < im.width && y < im.height) im.pixels[std::size_t(y * im.width + x)] = 255;
  }
}

inline void draw_contour(GrayImage& im, const std::vector<Pt>& pts) {
  for (std::size_t i = 0; i + 1 < pts.size(); i += 2) draw_segment(im, pts[i], pts[i + 1]);
}

inline void draw_marker(GrayImage& im, Pt c, int r) {
  auto cx = index_t(std::lround(c.x)), cy = index_t(std::lround(c.y));
  for (index_t y = cy - r; y <= cy + r; ++y)
    for (index_t x = cx - r; x <= cx + r; ++x)
      if (x >= 0 && y >= 0 && x < im.width && y < im.height) im.pixels[std::size_t(y * im.width + x)] = 255;
}

inline double min_distance(const std::vector<Pt>& pts, Pt q) {
  double m = 1e30;
  for (auto p : pts) m = std::min(m, std::hypot(p.x - q.x, p.y - q.y));
  return m;
}
}  // namespace detail

// One image with the given label (1: the markers are the two ends of one contour).
inline PathfinderSample generate_pathfinder_sample(Rng& rng, const PathfinderGenConfig& c, std::int32_t label) {
  LONGSEQ_CHECK(c.resolution >= 8 && c.contour_length >= 1, "Pathfinder generator: need resolution >= 8 and contour_length >= 1, got ",
                c.resolution, " and ", c.contour_length);
  const double res = double(c.resolution);
  const double dash = c.dash_length > 0 ? c.dash_length : std::max(2.0, res / 16);
  const double gap = c.gap_length > 0 ? c.gap_length : dash / 2;
  const int r = c.marker_radius > 0 ? c.marker_radius : std::max(1, int(c.resolution / 32));
  const double margin = r + 1;
  using detail::Pt;
  std::vector<Pt> a, b;
  // The second contour must keep away from the first one's ends, or a negative could look connected.
  for (int attempt = 0; attempt < 100; ++attempt) {
    a = detail::random_contour(rng, res, c.contour_length, dash, gap, c.max_turn, margin);
    b = detail::random_contour(rng, res, c.contour_length, dash, gap, c.max_turn, margin);
    if (a.empty() || b.empty()) continue;
    double sep = 2.0 * r + 2;
    if (detail::min_distance(b, a.front()) > sep && detail::min_distance(b, a.back()) > sep &&
        detail::min_distance(a, b.front()) > sep && detail::min_distance(a, b.back()) > sep)
      break;
  }
  LONGSEQ_CHECK(!a.empty() && !b.empty(), "Pathfinder generator: contours of ", c.contour_length, " dashes of ", dash,
                " px do not fit a ", c.resolution, "x", c.resolution, " image; shorten them");
  PathfinderSample s;
  s.label = label;
  s.image.width = s.image.height = c.resolution;
  s.image.pixels.assign(std::size_t(c.resolution * c.resolution), 0);
  detail::draw_contour(s.image, a);
  detail::draw_contour(s.image, b);
  for (int d = 0; d < c.distractors; ++d) {
    auto pts = detail::random_contour(rng, res, std::max(1, c.contour_length / 3), dash, gap, c.max_turn, margin);
    detail::draw_contour(s.image, pts);
  }
  detail::draw_marker(s.image, a.front(), r);
  detail::draw_marker(s.image, label ? a.back() : b.back(), r);
  return s;
}

// Writes n labelled images (labels alternate in random order: balanced) under root/<difficulty>.
inline void generate_pathfinder_files(const fs::path& root, index_t n, const PathfinderGenConfig& c, std::uint64_t seed) {
  fs::path level = root / c.difficulty;
  fs::create_directories(level / "metadata");
  auto order = permutation(n, seed, 1);
  std::vector<std::string> meta(std::size_t((n + c.images_per_folder - 1) / c.images_per_folder));
  for (index_t i = 0; i < n; ++i) {
    Rng rng(seed, 1000 + std::uint64_t(i));  // per-image stream: any image can be regenerated alone
    auto label = std::int32_t(order[std::size_t(i)] % 2);
    auto s = generate_pathfinder_sample(rng, c, label);
    index_t k = i / c.images_per_folder;
    std::string folder = "imgs/" + std::to_string(k), file = "sample_" + std::to_string(i) + ".png";
    write_png_gray(level / folder / file, s.image);
    meta[std::size_t(k)] += folder + ' ' + file + ' ' + std::to_string(i) + ' ' + std::to_string(label) + ' ' +
                            std::to_string(c.resolution) + ' ' + std::to_string(c.contour_length) + '\n';
  }
  for (std::size_t k = 0; k < meta.size(); ++k) write_file(level / "metadata" / (std::to_string(k) + ".npy"), meta[k]);
}

}  // namespace longseq::data
