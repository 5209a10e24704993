// Task names of the command-line tools mapped to their readers: load_task("fashion-mnist", dir).
#pragma once
#include <string>
#include <string_view>

#include "aan.hpp"
#include "cifar.hpp"
#include "idx.hpp"
#include "imdb.hpp"
#include "listops.hpp"
#include "pathfinder.hpp"

namespace longseq::data {

inline constexpr const char* task_names = "listops, text, retrieval, image, pathfinder, fashion-mnist, mnist";

// Reads a whole task into memory with the reference options. `path` is the folder as the release
// unpacks it: listops-1000, aclImdb, tsv_data (AAN), cifar-10-batches-bin, pathfinderN, or the
// folder holding the IDX files. (PathX-128/256 are better read through PathfinderStream.)
inline Splits load_task(std::string_view task, const fs::path& path) {
  if (task == "listops") return load_listops(path);
  if (task == "text") return load_imdb(path);
  if (task == "retrieval") return load_aan(path);
  if (task == "image") return load_cifar10(path);
  if (task == "pathfinder") return load_pathfinder(path);
  if (task == "fashion-mnist" || task == "mnist") return load_idx_task(path, std::string(task));
  LONGSEQ_FAIL("unknown task '", task, "', expected one of ", task_names);
}

}  // namespace longseq::data
