// A run's folder and its resume: the lock (a live owner refused, a dead one taken over), atomic checked
// writes, partial files of interrupted saves removed, metrics on a full disk, the log rewound to the
// checkpoint on resume, resume refused for a missing checkpoint or changed options, and a stop signal
// that leaves a checkpoint from which the run continues to the uninterrupted numbers.
#include <doctest/doctest.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/wait.h>
#include <unistd.h>

#include <longseq/train/fit.hpp>
#include <longseq/train/resume.hpp>
#include <longseq/train/run_dir.hpp>
#include <longseq/train/signals.hpp>

#include "train/toy.hpp"
#include "temp_root.hpp"

using namespace longseq;
namespace fs = std::filesystem;
using Cls = heads::ClassificationHead<float>;
using Net = testing::ToyNet<float, Cls>;

namespace {

std::string temp_dir(const std::string& name) {
  auto d = testtmp::dir("rundir") / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}
std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
// The pid of a process that has exited (and been reaped): no process has it now.
long dead_pid() {
  const pid_t p = ::fork();
  if (p == 0) ::_exit(0);
  ::waitpid(p, nullptr, 0);
  return long(p);
}
std::string error_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

struct Run {
  Net net{testing::toy_config<float, Cls>(8, {.dim = 8, .classes = 2})};
  ParamStore<float> store;
  train::AdamW<float> opt;
  explicit Run(std::uint64_t seed = 42) : opt((store.bind(net), store), {.lr = 3e-3, .weight_decay = 0.01}) {
    Rng rng(seed);
    net.init(rng);
  }
  std::vector<float> params() {
    auto v = store.values();
    return std::vector<float>(v.data, v.data + v.numel());
  }
};
train::FitConfig quiet(std::string dir, std::string config = R"({"seed":7,"lr":0.003})") {
  train::FitConfig c;
  c.run = "toy";
  c.progress = false;
  c.checkpoint_dir = std::move(dir);
  c.epochs = 3;
  c.accum = 2;
  c.seed = 7;
  c.log_every = 1;
  c.metadata["config"] = std::move(config);
  return c;
}
const train::Schedule sched{train::Schedule::Kind::cosine, 3, 9, 0.0};

// Raises a signal at the start of one training batch, as a user's kill would arrive mid-run.
struct SignalledTask : testing::ToyTask<float> {
  index_t at_epoch = -1, at_batch = -1;
  int sig = SIGTERM;
  void load(train::Split s, index_t epoch, index_t i) {
    if (s == train::Split::train && epoch == at_epoch && i == at_batch) std::raise(sig);
    testing::ToyTask<float>::load(s, epoch, i);
  }
};

}  // namespace

TEST_CASE("RunLock: one live owner per folder; a second is refused naming folder and pid; a dead one's lock is taken over") {
  const std::string dir = temp_dir("lock");
  {
    train::RunLock a(dir);
    CHECK(a.held());
    CHECK(a.stale_pid() == -1);
    CHECK(read(dir + "/run.lock") == std::to_string(::getpid()) + "\n");
    const std::string msg = error_of([&] { train::RunLock b(dir); });
    CHECK(msg.find("output folder '" + dir + "' is in use by another run (pid " + std::to_string(::getpid())) !=
          std::string::npos);
  }
  CHECK_FALSE(fs::exists(dir + "/run.lock"));  // released
  // A lock file whose writer died (kill -9 leaves it behind): the kernel dropped its flock, so it is taken over.
  const long dead = dead_pid();
  std::ofstream(dir + "/run.lock") << dead << "\n";
  train::RunLock c(dir);
  CHECK(c.held());
  CHECK(c.stale_pid() == dead);
  CHECK(read(dir + "/run.lock") == std::to_string(::getpid()) + "\n");
}

TEST_CASE("write_file_atomic: replaces the file; a failed write names it and leaves the old file and no partial") {
  const std::string dir = temp_dir("atomic");
  train::write_file_atomic(dir + "/result.json", "{\"a\": 1}\n");
  CHECK(read(dir + "/result.json") == "{\"a\": 1}\n");
  train::write_file_atomic(dir + "/result.json", "{\"a\": 2}\n");
  CHECK(read(dir + "/result.json") == "{\"a\": 2}\n");
  // A folder where the file should go: the rename fails.
  fs::create_directories(dir + "/blocked.json");
  std::string msg = error_of([&] { train::write_file_atomic(dir + "/blocked.json", "x"); });
  CHECK(msg.find("writing '" + dir + "/blocked.json' failed") != std::string::npos);
  CHECK(fs::is_directory(dir + "/blocked.json"));
  // A missing folder: the temporary file cannot be created.
  msg = error_of([&] { train::write_file_atomic(dir + "/no/such/result.json", "x"); });
  CHECK(msg.find("cannot write '" + dir + "/no/such/result.json'") != std::string::npos);
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
}

TEST_CASE("MetricsLog: a full disk is an error naming the file") {
  train::MetricsLog log("/dev/full");  // every write fails with ENOSPC
  const std::string msg = error_of([&] { log.write({{"event", "step"}, {"step", 1}}); });
  CHECK(msg.find("writing metrics file '/dev/full' failed: No space left on device") != std::string::npos);
}

TEST_CASE("remove_stale_partials: removes the partial saves of dead writers only") {
  const std::string dir = temp_dir("partials");
  fs::create_directories(dir + "/s4d/spt");
  const std::string dead = dir + "/s4d/spt/last.safetensors.tmp." + std::to_string(dead_pid());
  const std::string mine = dir + "/best.safetensors.tmp." + std::to_string(::getpid());
  const std::string other = dir + "/notes.tmp.txt";
  for (const auto& p : {dead, mine, other}) std::ofstream(p) << "partial";
  const auto removed = train::remove_stale_partials(dir);
  REQUIRE(removed.size() == 1);
  CHECK(removed[0] == dead);
  CHECK_FALSE(fs::exists(dead));
  CHECK(fs::exists(mine));
  CHECK(fs::exists(other));
}

TEST_CASE("MetricsLog::rewind: drops the records of a run after its checkpoint and a torn last line") {
  const std::string dir = temp_dir("rewind");
  const std::string path = dir + "/metrics.jsonl";
  {
    train::MetricsLog log(path, true);
    log.write({{"event", "transfer"}, {"from", "x"}});
    for (int s = 1; s <= 6; ++s) {
      log.write({{"event", "step"}, {"run", "toy"}, {"step", s}, {"epoch", s <= 3 ? 0 : 1}});
      if (s % 3 == 0) log.write({{"event", "epoch"}, {"run", "toy"}, {"epoch", s / 3 - 1}, {"step", s}});
    }
    log.write({{"event", "step"}, {"run", "other"}, {"step", 9}});
  }
  std::ofstream(path, std::ios::app) << "{\"event\": \"step\", \"run\": \"toy\", \"st";  // killed mid-line
  train::MetricsLog log(path);
  log.rewind("toy", 4, 1);  // a checkpoint at step 4, epoch 1 not finished
  log.write({{"event", "step"}, {"run", "toy"}, {"step", 5}});
  std::istringstream lines(read(path));
  std::vector<std::string> got;
  for (std::string l; std::getline(lines, l);) got.push_back(l);
  const std::vector<std::string> want{
      R"({"event":"transfer","from":"x"})",
      R"({"epoch":0,"event":"step","run":"toy","step":1})",
      R"({"epoch":0,"event":"step","run":"toy","step":2})",
      R"({"epoch":0,"event":"step","run":"toy","step":3})",
      R"({"epoch":0,"event":"epoch","run":"toy","step":3})",
      R"({"epoch":1,"event":"step","run":"toy","step":4})",
      R"({"event":"step","run":"other","step":9})",
      R"({"event":"step","run":"toy","step":5})"};
  CHECK(got == want);
}

TEST_CASE("resume: a missing checkpoint and changed options are refused, naming the file and each option") {
  testing::ToyTask<float> task;
  const std::string dir = temp_dir("resume_checks");
  {
    Run r;
    auto cfg = quiet(dir);
    cfg.resume = true;
    cfg.resume_required = true;
    const std::string msg = error_of([&] { train::fit(r.net, r.store, r.opt, sched, task, cfg); });
    CHECK(msg.find("run 'toy': cannot resume: '" + dir + "/last.safetensors' does not exist") != std::string::npos);
  }
  {
    Run r;
    auto cfg = quiet(dir);
    cfg.stop_after = 2;
    CHECK(train::fit(r.net, r.store, r.opt, sched, task, cfg).interrupted);
  }
  Run r;
  auto cfg = quiet(dir, R"({"seed":8,"lr":0.003,"data":"b"})");  // "data": a key the file lacks is not compared
  cfg.resume = true;
  cfg.resume_required = true;
  const auto before = r.params();
  std::string msg = error_of([&] { train::fit(r.net, r.store, r.opt, sched, task, cfg); });
  CHECK(msg.find("cannot resume from '" + dir + "/last.safetensors': the run's options differ from those it was "
                 "started with (--seed: checkpoint 7, now 8); give the old values again, or accept the change with "
                 "--allow-changed seed") != std::string::npos);
  CHECK(r.params() == before);  // refused before anything was loaded
  cfg.metadata["config"] = R"({"seed":8,"lr":0.01})";
  msg = error_of([&] { train::fit(r.net, r.store, r.opt, sched, task, cfg); });
  CHECK(msg.find("(--lr: checkpoint 0.003, now 0.01; --seed: checkpoint 7, now 8)") != std::string::npos);
  CHECK(msg.find("--allow-changed lr,seed") != std::string::npos);
  cfg.allow_changed = {"seed", "lr"};
  const auto res = train::fit(r.net, r.store, r.opt, sched, task, cfg);
  CHECK(res.resumed_from == 2);
  CHECK(res.steps == 9);
  // Option names as users write them.
  CHECK(train::option_key("--d-model") == "d_model");
  CHECK(train::option_flag("d_model") == "--d-model");
}

TEST_CASE("fit: SIGTERM stops at the next update with a checkpoint; resuming reaches the uninterrupted numbers") {
  testing::ToyTask<float> plain;
  const std::string dir_a = temp_dir("signal_full"), dir_b = temp_dir("signal_stopped");
  std::vector<float> full, resumed;
  {
    Run r;
    train::MetricsLog log(dir_a + "/metrics.jsonl", true);
    auto cfg = quiet(dir_a);
    cfg.log = &log;
    CHECK(train::fit(r.net, r.store, r.opt, sched, plain, cfg).steps == 9);
    full = r.params();
  }
  {
    train::StopOnSignal guard;
    SignalledTask task;
    task.at_epoch = 1;
    task.at_batch = 2;  // the second update of epoch 1 (3 updates of 2 micro-batches per epoch)
    Run r;
    train::MetricsLog log(dir_b + "/metrics.jsonl", true);
    auto cfg = quiet(dir_b);
    cfg.log = &log;
    cfg.stop_on_signal = true;
    const auto res = train::fit(r.net, r.store, r.opt, sched, task, cfg);
    CHECK(res.interrupted);
    CHECK(res.signal == SIGTERM);
    CHECK(res.steps == 5);  // the update that saw the signal finished, then the loop stopped
    CHECK(train::stop_requested() == SIGTERM);
    train::StopOnSignal::reset();
  }
  {
    Run r(1234);
    train::MetricsLog log(dir_b + "/metrics.jsonl");
    auto cfg = quiet(dir_b);
    cfg.log = &log;
    cfg.resume = true;
    cfg.resume_required = true;
    const auto res = train::fit(r.net, r.store, r.opt, sched, plain, cfg);
    CHECK(res.resumed_from == 5);
    CHECK(res.steps == 9);
    resumed = r.params();
  }
  REQUIRE(full.size() == resumed.size());
  CHECK(std::memcmp(full.data(), resumed.data(), full.size() * sizeof(float)) == 0);
  // The interrupted-then-resumed log equals the uninterrupted one but for times and the training loss of
  // the resumed epoch (it covers the batches since the resume).
  auto strip = [](const std::string& text) {
    std::istringstream in(text);
    std::string out;
    for (std::string l; std::getline(in, l);) {
      auto j = nlohmann::json::parse(l);
      for (const char* k : {"elapsed_s", "seconds", "tokens_per_s", "train"}) j.erase(k);
      out += j.dump() + "\n";
    }
    return out;
  };
  CHECK(strip(read(dir_a + "/metrics.jsonl")) == strip(read(dir_b + "/metrics.jsonl")));
}

TEST_CASE("checkpoint: a folder given as a checkpoint is refused by name, nothing read") {
  const std::string dir = temp_dir("folder_ckpt");
  Run r;
  const std::string msg = error_of([&] { train::load_checkpoint<float>(dir, r.store, &r.opt, nullptr); });
  CAPTURE(msg);
  CHECK(msg.find("safetensors file '" + dir + "' is a folder, not a file") != std::string::npos);
}
