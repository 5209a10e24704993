// lra_data: inspects Long Range Arena / MNIST-style data sets as longseq reads them, and writes
// generated ListOps and Pathfinder sets in the release formats.
//   lra_data inspect --task listops --path lra_release/listops-1000
//   lra_data generate --task pathfinder --out data/pathfinder32 --n 2000 --seed 1
// Exits non-zero with the reader's message (file, line or record, what was expected) on bad input.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <string>

#include <longseq/data/aan.hpp>
#include <longseq/data/cifar.hpp>
#include <longseq/data/generate_listops.hpp>
#include <longseq/data/generate_pathfinder.hpp>
#include <longseq/data/idx.hpp>
#include <longseq/data/imdb.hpp>
#include <longseq/data/listops.hpp>
#include <longseq/data/pathfinder.hpp>
#include <longseq/data/summary.hpp>
#include <longseq/data/tasks.hpp>

namespace ld = longseq::data;
using longseq::index_t;
using nlohmann::json;

namespace {

std::string printable(const std::string& tok) {
  std::string out;
  for (unsigned char c : tok) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else out += char(c);
  }
  return out;
}

json summary_json(const ld::SplitSummary& s, const ld::Vocab* vocab) {
  json j;
  j["count"] = s.count;
  json labels = json::object();
  for (auto [y, n] : s.labels) labels[std::to_string(y)] = n;
  j["labels"] = labels;
  j["length"] = {{"min", s.min_length}, {"mean", s.mean_length}, {"max", s.max_length}};
  json top = json::array();
  for (auto [id, n] : s.top_ids) {
    json t = {{"id", id}, {"count", n}};
    if (vocab && id < vocab->size()) t["token"] = vocab->token(id);
    top.push_back(t);
  }
  j["top_ids"] = top;
  return j;
}

void print_summary(const std::string& name, const ld::SplitSummary& s, const ld::Vocab* vocab) {
  std::cout << name << ": " << s.count << " examples\n  labels:";
  for (auto [y, n] : s.labels)
    std::cout << ' ' << y << '=' << n << " (" << (s.count ? 100.0 * double(n) / double(s.count) : 0.0) << "%)";
  std::cout << "\n  length: min " << s.min_length << ", mean " << s.mean_length << ", max " << s.max_length << '\n';
  if (!s.top_ids.empty()) {
    std::cout << "  most frequent " << (vocab ? "tokens" : "intensities") << ":";
    for (auto [id, n] : s.top_ids) {
      std::cout << ' ';
      if (vocab) std::cout << '\'' << printable(vocab->token(id)) << "'=";
      else std::cout << id << '=';
      std::cout << n;
    }
    std::cout << '\n';
  }
}

struct InspectArgs {
  std::string task, path;
  index_t top = 10;
  bool skip_missing = false, no_decode = false, as_json = false, strict = false;
};

template <class Src>
void report(const InspectArgs& a, const ld::TaskInfo& info, const Src& train, const Src& val, const Src& test,
            const ld::Vocab* vocab, bool read_ids) {
  auto s_train = ld::summarize(train, a.top, read_ids), s_val = ld::summarize(val, a.top, read_ids),
       s_test = ld::summarize(test, a.top, read_ids);
  if (a.as_json) {
    json j;
    j["task"] = a.task;
    j["path"] = a.path;
    j["num_classes"] = info.num_classes;
    j["vocab_size"] = info.vocab_size;
    j["max_length"] = info.max_length;
    j["docs_per_example"] = info.docs;
    j["splits"] = {{"train", summary_json(s_train, vocab)}, {"val", summary_json(s_val, vocab)}, {"test", summary_json(s_test, vocab)}};
    std::cout << j.dump(2) << '\n';
    return;
  }
  std::cout << "task " << a.task << " (" << info.name << ") at " << a.path << "\n";
  std::cout << "classes " << info.num_classes << ", max length " << info.max_length;
  if (info.docs == 2) std::cout << " per document (pairs)";
  if (vocab) std::cout << ", vocabulary " << vocab->size() << " (specials <mask>=0 <pad>=1 <unk>=2 <eos>=3)";
  else std::cout << ", " << info.height << "x" << info.width << " pixels, 256 intensities";
  std::cout << '\n';
  print_summary("train", s_train, vocab);
  print_summary("val", s_val, vocab);
  print_summary("test", s_test, vocab);
  if (vocab) {
    std::cout << "vocabulary (by training frequency):";
    for (index_t i = ld::Vocab::num_specials; i < std::min<index_t>(vocab->size(), ld::Vocab::num_specials + a.top); ++i)
      std::cout << " '" << printable(vocab->token(std::int32_t(i))) << "'=" << vocab->count(std::int32_t(i));
    std::cout << '\n';
  }
}

void inspect(const InspectArgs& a) {
  const ld::fs::path p = a.path;
  auto splits = [&](const ld::Splits& s, bool tokens) {
    report(a, s.train.info(), s.train, s.val, s.test, tokens ? &s.vocab : nullptr, true);
  };
  if (a.task == "listops") {
    ld::ListOpsOptions o;
    o.strict = a.strict;
    splits(ld::load_listops(p, o), true);
  }
  else if (a.task == "text") splits(ld::load_imdb(p), true);
  else if (a.task == "retrieval") splits(ld::load_aan(p), true);
  else if (a.task == "image") splits(ld::load_cifar10(p), false);
  else if (a.task == "fashion-mnist" || a.task == "mnist") splits(ld::load_idx_task(p, a.task), false);
  else if (a.task == "pathfinder") {
    ld::PathfinderOptions o;
    o.skip_missing = a.skip_missing;
    ld::PathfinderStream stream(p, o);
    for (const auto& s : stream.index().skipped) std::cerr << "lra_data: skipped " << s << '\n';
    auto sp = ld::split_pathfinder(stream, o);
    report(a, stream.info(), sp.train, sp.val, sp.test, nullptr, !a.no_decode);
  } else {
    splits(ld::load_task(a.task, p), true);  // reports the unknown task name
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Inspect Long Range Arena data as longseq reads it, or generate ListOps / Pathfinder sets"};
  app.require_subcommand(1);

  InspectArgs ia;
  auto* ins = app.add_subcommand("inspect", "counts, label balance, length statistics and vocabulary of a task's splits");
  ins->add_option("--task", ia.task, "listops | text | retrieval | image | pathfinder | fashion-mnist | mnist")->required();
  ins->add_option("--path", ia.path,
                  "folder as the release unpacks it (listops-1000, aclImdb, tsv_data, cifar-10-batches-bin, pathfinderN, IDX folder)");
  ins->add_option("--top", ia.top, "how many frequent tokens to list")->default_val(10);
  ins->add_flag("--skip-missing", ia.skip_missing, "pathfinder: skip missing or empty images instead of failing");
  ins->add_flag("--no-decode", ia.no_decode, "pathfinder: do not decode the images (counts and labels only)");
  ins->add_flag("--json", ia.as_json, "print the statistics as JSON");
  ins->add_flag("--strict", ia.strict, "listops: reject tokens outside the grammar");

  std::string gtask, out;
  index_t n = 1000, n_val = -1, n_test = -1;
  std::uint64_t seed = 0;
  ld::ListOpsGenConfig lc;
  ld::PathfinderGenConfig pc;
  auto* gen = app.add_subcommand("generate", "write a generated ListOps or Pathfinder set in the release format");
  gen->add_option("--task", gtask, "listops | pathfinder")->required()->check(CLI::IsMember({"listops", "pathfinder"}));
  gen->add_option("--out", out, "output folder (listops: holds basic_*.tsv; pathfinder: the pathfinderN folder)")->required();
  gen->add_option("--n", n, "examples (listops: training examples)")->default_val(1000);
  gen->add_option("--n-val", n_val, "listops validation examples (default n/10)");
  gen->add_option("--n-test", n_test, "listops test examples (default n/10)");
  gen->add_option("--seed", seed, "seed of the Philox streams")->default_val(0);
  gen->add_option("--max-depth", lc.max_depth, "listops nesting limit")->default_val(lc.max_depth);
  gen->add_option("--max-args", lc.max_args, "listops arguments per operator")->default_val(lc.max_args);
  gen->add_option("--min-length", lc.min_length, "listops shortest expression in tokens")->default_val(lc.min_length);
  gen->add_option("--max-length", lc.max_length, "listops longest expression in tokens")->default_val(lc.max_length);
  gen->add_option("--resolution", pc.resolution, "pathfinder image side")->default_val(pc.resolution);
  gen->add_option("--contour-length", pc.contour_length, "pathfinder dashes per contour")->default_val(pc.contour_length);
  gen->add_option("--distractors", pc.distractors, "pathfinder distractor paths")->default_val(pc.distractors);

  CLI11_PARSE(app, argc, argv);
  try {
    if (ins->parsed()) {
      if (ia.path.empty()) {
        // The Debian package dataset-fashion-mnist unpacks here; other tasks need --path.
        if (ia.task == "fashion-mnist") ia.path = "/usr/share/datasets/fashion-mnist";
        else throw longseq::Error("--path is required for task '" + ia.task + "'");
      }
      inspect(ia);
    } else if (gtask == "listops") {
      index_t nv = n_val >= 0 ? n_val : std::max<index_t>(1, n / 10), nt = n_test >= 0 ? n_test : std::max<index_t>(1, n / 10);
      ld::generate_listops_files(out, n, nv, nt, lc, seed);
      std::cout << "wrote " << n << "/" << nv << "/" << nt << " ListOps examples to " << out << '\n';
    } else {
      ld::generate_pathfinder_files(out, n, pc, seed);
      std::cout << "wrote " << n << " Pathfinder images (" << pc.resolution << "x" << pc.resolution << ") to " << out << '/'
                << pc.difficulty << '\n';
    }
  } catch (const std::exception& e) {
    std::cerr << "lra_data: error: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
