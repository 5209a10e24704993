// 8-bit grayscale PNG decode/encode through libpng's simplified API (colour input is converted to
// gray by libpng); without libpng every call throws a Error saying so.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#if LONGSEQ_WITH_PNG
#include <png.h>
#endif

#include "files.hpp"

namespace longseq::data {

struct GrayImage {
  index_t width = 0, height = 0;
  std::vector<std::uint8_t> pixels;  // row-major, height * width
};

// Images with more pixels than this are rejected before any allocation (PathX-256 has 65,536).
inline constexpr index_t max_png_pixels = index_t(1) << 26;

// Decodes PNG bytes of the file named f to 8-bit gray.
inline GrayImage decode_png_gray(std::string_view bytes, const std::string& f) {
#if LONGSEQ_WITH_PNG
  LONGSEQ_CHECK(!bytes.empty(), "file '", f, "': empty, expected a PNG image");
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, bytes.data(), bytes.size())) {
    std::string msg = img.message;
    png_image_free(&img);
    LONGSEQ_FAIL("file '", f, "': not a readable PNG (", msg, ")");
  }
  img.format = PNG_FORMAT_GRAY;
  if (index_t w = img.width, h = img.height; w * h > max_png_pixels) {
    png_image_free(&img);
    LONGSEQ_FAIL("file '", f, "': image of ", w, "x", h, " pixels, expected at most ", max_png_pixels, " pixels");
  }
  GrayImage out;
  out.width = index_t(img.width);
  out.height = index_t(img.height);
  out.pixels.resize(std::size_t(PNG_IMAGE_SIZE(img)));
  if (!png_image_finish_read(&img, nullptr, out.pixels.data(), 0, nullptr)) {
    std::string msg = img.message;
    png_image_free(&img);
    LONGSEQ_FAIL("file '", f, "': truncated or corrupt PNG data (", msg, ")");
  }
  return out;
#else
  LONGSEQ_FAIL("cannot decode '", f, "' (", bytes.size(), " bytes): longseq was built without libpng (apt-get install libpng-dev)");
#endif
}

inline GrayImage read_png_gray(const fs::path& path) {
  LONGSEQ_CHECK(fs::exists(path), "missing file '", path.string(), "' (expected a PNG image)");
  return decode_png_gray(read_file(path), path.string());
}

inline void write_png_gray(const fs::path& path, const GrayImage& im) {
  LONGSEQ_CHECK(index_t(im.pixels.size()) == im.width * im.height, "image for '", path.string(), "' has ",
                im.pixels.size(), " pixels, expected ", im.width, "x", im.height);
#if LONGSEQ_WITH_PNG
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  img.width = png_uint_32(im.width);
  img.height = png_uint_32(im.height);
  img.format = PNG_FORMAT_GRAY;
  if (!png_image_write_to_file(&img, path.string().c_str(), 0, im.pixels.data(), 0, nullptr)) {
    std::string msg = img.message;
    png_image_free(&img);
    LONGSEQ_FAIL("cannot write PNG '", path.string(), "': ", msg);
  }
#else
  LONGSEQ_FAIL("cannot write '", path.string(), "': longseq was built without libpng (apt-get install libpng-dev)");
#endif
}

}  // namespace longseq::data
