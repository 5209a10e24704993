// Stand-in for libFuzzer where the compiler lacks -fsanitize=fuzzer: runs the harness on every seed
// file, then on deterministic mutations of them (bit flips, byte changes, truncation, insertion,
// deletion, duplication). A harness lets only longseq::Error through as "rejected input"; anything
// else (another exception, a crash, a sanitizer report) fails the run.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <longseq/core/rng.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  long runs = 1000;
  std::vector<std::string> seeds;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "-runs=", 6) == 0) {
      runs = std::atol(argv[i] + 6);
      continue;
    }
    std::filesystem::path p = argv[i];
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
    } else {
      files.push_back(p);
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      seeds.emplace_back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    }
  }
  seeds.emplace_back();
  auto run = [](const std::string& s) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  };
  for (const auto& s : seeds) run(s);
  longseq::Rng rng(2024);
  for (long r = 0; r < runs; ++r) {
    std::string s = seeds[rng.below(seeds.size())];
    int ops = 1 + int(rng.below(4));
    for (int k = 0; k < ops; ++k) {
      std::size_t n = s.size();
      switch (rng.below(6)) {
        case 0:
          if (n) s[rng.below(n)] ^= char(1u << rng.below(8));
          break;
        case 1:
          if (n) s[rng.below(n)] = char(rng.below(256));
          break;
        case 2:
          s.resize(rng.below(n + 1));
          break;
        case 3: {
          std::string ins(1 + rng.below(8), '\0');
          for (auto& c : ins) c = char(rng.below(256));
          s.insert(rng.below(n + 1), ins);
          break;
        }
        case 4:
          if (n) s.erase(rng.below(n), 1 + rng.below(16));
          break;
        default:
          if (n) {
            std::size_t a = rng.below(n), len = 1 + rng.below(std::min<std::size_t>(n - a, 64));
            s.insert(rng.below(n + 1), s.substr(a, len));
          }
      }
    }
    run(s);
  }
  std::printf("fuzz driver: %zu seeds, %ld mutated inputs, all handled\n", seeds.size(), runs);
  return 0;
}
