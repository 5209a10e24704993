// What a resume checks before it continues: the run's configuration (FitConfig::metadata["config"], a
// JSON object of option name -> value) must equal the one stored in the checkpoint, except for the
// entries the user explicitly allowed to change; otherwise the error names every differing option
// with its old and new value.
#pragma once
#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"

namespace longseq::train {

// A config key as the option it came from: "d_model" -> "--d-model".
inline std::string option_flag(std::string key) {
  for (char& c : key)
    if (c == '_') c = '-';
  return "--" + key;
}
// The key of an option name as a user writes it ("--d-model", "d-model", "d_model" -> "d_model").
inline std::string option_key(std::string name) {
  while (!name.empty() && name.front() == '-') name.erase(name.begin());
  for (char& c : name)
    if (c == '-') c = '_';
  return name;
}

// The metadata of a safetensors file read from its header alone (the tensors stay on disk); nullopt
// when the header is unreadable, so that the full load reports the damage with its own message.
inline std::optional<std::map<std::string, std::string>> read_checkpoint_metadata(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  in.seekg(0, std::ios::end);
  const auto size = std::uint64_t(in.tellg());
  in.seekg(0);
  unsigned char len[8];
  if (size < 8 || !in.read(reinterpret_cast<char*>(len), 8)) return std::nullopt;
  std::uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | len[k];
  if (n < 2 || n > size - 8 || n > 100'000'000) return std::nullopt;
  std::string header(std::size_t(n), '\0');
  if (!in.read(header.data(), std::streamsize(n))) return std::nullopt;
  const auto j = nlohmann::json::parse(header, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  std::map<std::string, std::string> meta;
  if (auto it = j.find("__metadata__"); it != j.end() && it->is_object())
    for (const auto& [k, v] : it->items())
      if (v.is_string()) meta[k] = v.get<std::string>();
  return meta;
}

// The options whose value differs between a stored and a current configuration (both JSON objects),
// each as (key, "--option: checkpoint <old>, now <new>"). Entries only one side has are not compared (a file
// written before the option existed). `allowed` holds option keys that may change, or "all".
inline std::vector<std::pair<std::string, std::string>> config_differences(const std::string& stored, const std::string& current,
                                                   const std::set<std::string>& allowed = {}) {
  std::vector<std::pair<std::string, std::string>> out;
  if (allowed.count("all")) return out;
  const auto a = nlohmann::json::parse(stored, nullptr, false);
  const auto b = nlohmann::json::parse(current, nullptr, false);
  if (!a.is_object() || !b.is_object()) {
    if (stored != current) out.push_back({"config", "config: checkpoint " + stored + ", now " + current});
    return out;
  }
  for (const auto& [key, now] : b.items()) {
    auto it = a.find(key);
    if (it == a.end() || *it == now || allowed.count(key)) continue;
    // 0.1 stored as a double and read back compares equal; ints and floats of one value do too.
    if (it->is_number() && now.is_number() && it->get<double>() == now.get<double>()) continue;
    out.push_back({key, option_flag(key) + ": checkpoint " + it->dump() + ", now " + now.dump()});
  }
  return out;
}

// Refuses to resume `path` when the stored configuration differs from `current` outside `allowed`.
inline void check_resume_config(const std::string& path, const std::map<std::string, std::string>& current,
                                const std::set<std::string>& allowed) {
  auto now = current.find("config");
  if (now == current.end()) return;
  const auto meta = read_checkpoint_metadata(path);
  if (!meta) return;  // the load that follows reports what is wrong with the file
  auto was = meta->find("config");
  if (was == meta->end()) return;
  const auto diff = config_differences(was->second, now->second, allowed);
  if (diff.empty()) return;
  std::string list, keys;
  for (const auto& [key, text] : diff) {
    list += (list.empty() ? "" : "; ") + text;
    keys += (keys.empty() ? "" : ",") + key;
  }
  LONGSEQ_FAIL("cannot resume from '", path, "': the run's options differ from those it was started with (", list,
               "); give the old values again, or accept the change with --allow-changed ", keys);
}

}  // namespace longseq::train
