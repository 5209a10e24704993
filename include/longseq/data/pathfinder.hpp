// Pathfinder / PathX reader: pathfinderN/<difficulty>/metadata/<k>.npy (plain-text lines: folder,
// file, index, label, ...) and the PNGs they name; pixels (v/255 - 0.5)/0.5, 80/10/10 split with a
// fixed seed. In memory (load_pathfinder) or lazily, decoding each PNG on demand (PathfinderStream).
#pragma once
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "dataset.hpp"
#include "files.hpp"
#include "png.hpp"

namespace longseq::data {

struct PathfinderOptions {
  index_t resolution = 0;  // 0: from the folder name pathfinderN, else from the first image
  std::string difficulty = "curv_contour_length_14";
  bool skip_missing = false;  // missing or empty image files: skipped and listed, or an error
  double val_fraction = 0.1, test_fraction = 0.1;
  std::uint64_t seed = 42;
};

struct PathfinderEntry {
  fs::path image;
  std::int32_t label = 0;
};

struct PathfinderIndex {
  fs::path root;
  index_t resolution = 0;
  std::vector<PathfinderEntry> entries;
  std::vector<std::string> skipped;  // blacklisted or (with skip_missing) missing/empty images
};

// Release files known to be broken (empty), relative to the folder above pathfinderN.
inline const std::array<const char*, 1> pathfinder_blacklist{"pathfinder32/curv_baseline/imgs/0/sample_172.png"};

inline TaskInfo pathfinder_info(index_t resolution) {
  TaskInfo info;
  info.name = "pathfinder" + std::to_string(resolution);
  info.modality = Modality::pixels;
  info.num_classes = 2;
  info.vocab_size = 256;
  info.width = info.height = resolution;
  info.max_length = resolution * resolution;
  info.norm = PixelNorm{0.5f, 0.5f};
  return info;
}

// One metadata line: image folder and file (relative to the difficulty folder) and the label.
struct PathfinderMetaLine {
  std::string folder, file;
  std::int32_t label = 0;
  index_t line = 0;  // 1-based, for messages
};

// Parses one metadata file's text (named f): whitespace-separated fields, field 4 the 0/1 label.
inline std::vector<PathfinderMetaLine> parse_pathfinder_metadata(std::string_view text, const std::string& f) {
  std::vector<PathfinderMetaLine> out;
  auto lines = split_lines(text);
  for (std::size_t l = 0; l < lines.size(); ++l) {
    if (trim(lines[l]).empty()) continue;
    auto fields = split_whitespace(lines[l]);
    LONGSEQ_CHECK(fields.size() >= 4, "file '", f, "', line ", l + 1,
                  ": expected at least 4 whitespace-separated fields (folder, file, index, label), got ", fields.size());
    std::string where = "file '" + f + "', line " + std::to_string(l + 1) + ", field 4 (label)";
    auto y = parse_label(fields[3], where);
    LONGSEQ_CHECK(y == 0 || y == 1, where, ": expected label 0 or 1, got ", y);
    out.push_back({std::string(fields[0]), std::string(fields[1]), std::int32_t(y), index_t(l + 1)});
  }
  return out;
}

inline PathfinderIndex read_pathfinder_index(const fs::path& root, const PathfinderOptions& opt = {}) {
  require_directory(root, "a pathfinderN folder (N = 32, 64, 128, 256)");
  fs::path level = root / opt.difficulty;
  require_directory(level / "metadata", "<difficulty>/metadata with <k>.npy text files");
  std::vector<std::pair<long long, fs::path>> meta;
  for (const auto& p : list_files(level / "metadata", ".npy")) {
    std::string stem = p.stem().string();
    long long k = 0;
    auto [end, ec] = std::from_chars(stem.data(), stem.data() + stem.size(), k);
    LONGSEQ_CHECK(ec == std::errc() && end == stem.data() + stem.size(), "metadata file '", p.string(),
                  "': expected an integer file name such as 0.npy");
    meta.emplace_back(k, p);
  }
  LONGSEQ_CHECK(!meta.empty(), "directory '", (level / "metadata").string(), "': expected metadata files <k>.npy, found none");
  std::sort(meta.begin(), meta.end());
  PathfinderIndex idx;
  idx.root = root;
  const std::string root_name = root.filename().empty() ? root.parent_path().filename().string() : root.filename().string();
  for (const auto& [k, p] : meta) {
    for (const auto& m : parse_pathfinder_metadata(read_file(p), p.string())) {
      fs::path rel = fs::path(opt.difficulty) / m.folder / m.file;
      std::string key = (fs::path(root_name) / rel).generic_string();
      if (std::find(pathfinder_blacklist.begin(), pathfinder_blacklist.end(), key) != pathfinder_blacklist.end()) {
        idx.skipped.push_back(key);
        continue;
      }
      fs::path img = root / rel;
      std::error_code ec;
      auto size = fs::file_size(img, ec);
      if (ec || size == 0) {
        LONGSEQ_CHECK(opt.skip_missing, "file '", p.string(), "', line ", m.line, ": image '", img.string(), "' ",
                      ec ? "is missing" : "is empty", " (expected a PNG; skip such entries with skip_missing)");
        idx.skipped.push_back(key);
        continue;
      }
      idx.entries.push_back({img, m.label});
    }
  }
  LONGSEQ_CHECK(!idx.entries.empty(), "folder '", level.string(), "': the metadata lists no usable image");
  idx.resolution = opt.resolution;
  if (idx.resolution == 0 && root_name.rfind("pathfinder", 0) == 0) {
    std::string n = root_name.substr(10);
    std::from_chars(n.data(), n.data() + n.size(), idx.resolution);
  }
  if (idx.resolution == 0) idx.resolution = read_png_gray(idx.entries.front().image).width;
  return idx;
}

// Decodes one image, checking that it is resolution x resolution.
inline std::vector<std::uint8_t> read_pathfinder_image(const fs::path& path, index_t resolution) {
  GrayImage im = read_png_gray(path);
  LONGSEQ_CHECK(im.width == resolution && im.height == resolution, "file '", path.string(), "': image is ", im.width,
                "x", im.height, ", expected ", resolution, "x", resolution);
  return std::move(im.pixels);
}

// Examples read lazily: read(i) decodes the i-th PNG (for PathX-256, 65,536 steps per example).
class PathfinderStream {
 public:
  explicit PathfinderStream(PathfinderIndex idx) : idx_(std::move(idx)), info_(pathfinder_info(idx_.resolution)) {}
  explicit PathfinderStream(const fs::path& root, const PathfinderOptions& opt = {}) : PathfinderStream(read_pathfinder_index(root, opt)) {}

  index_t size() const { return index_t(idx_.entries.size()); }
  const TaskInfo& info() const { return info_; }
  index_t length(index_t) const { return info_.max_length; }
  std::int32_t label(index_t i) const { return entry(i).label; }
  void read(index_t i, Example& e) const {
    auto px = read_pathfinder_image(entry(i).image, idx_.resolution);
    e.label = entry(i).label;
    e.ids.assign(px.begin(), px.end());
    e.ids2.clear();
    e.values.resize(px.size());
    for (std::size_t k = 0; k < px.size(); ++k) e.values[k] = info_.norm(px[k]);
  }
  const PathfinderIndex& index() const { return idx_; }

 private:
  const PathfinderEntry& entry(index_t i) const {
    LONGSEQ_CHECK(i >= 0 && i < size(), "example index ", i, " out of range for ", info_.name, " of size ", size());
    return idx_.entries[std::size_t(i)];
  }
  PathfinderIndex idx_;
  TaskInfo info_;
};

static_assert(ExampleSource<PathfinderStream>, "PathfinderStream must model ExampleSource (size, info, length, label, read)");
static_assert(ExampleSource<Subset<PathfinderStream>>, "Subset must model ExampleSource");

// The 80/10/10 split of a stream as three lazy subsets.
struct PathfinderStreamSplits {
  Subset<PathfinderStream> train, val, test;
};
inline PathfinderStreamSplits split_pathfinder(const PathfinderStream& s, const PathfinderOptions& opt = {}) {
  auto idx = split_indices(s.size(), opt.val_fraction, opt.test_fraction, opt.seed);
  return {Subset<PathfinderStream>(s, idx.train), Subset<PathfinderStream>(s, idx.val), Subset<PathfinderStream>(s, idx.test)};
}

// Decodes every image into memory (Pathfinder 32/64; PathX-128 is ~3 GB, PathX-256 needs the stream).
inline Splits load_pathfinder(const fs::path& root, const PathfinderOptions& opt = {}) {
  auto idx = read_pathfinder_index(root, opt);
  Dataset all(pathfinder_info(idx.resolution));
  all.reserve(index_t(idx.entries.size()), index_t(idx.entries.size()) * idx.resolution * idx.resolution);
  for (const auto& e : idx.entries) all.add_pixels(e.label, read_pathfinder_image(e.image, idx.resolution));
  auto sp = split_indices(all.size(), opt.val_fraction, opt.test_fraction, opt.seed);
  Splits s;
  s.train = all.select(sp.train);
  s.val = all.select(sp.val);
  s.test = all.select(sp.test);
  return s;
}

}  // namespace longseq::data
