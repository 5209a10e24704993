"""What users do to the trainers, checked end to end (ctest examples_run_safety):

  flags     the options both trainers have are one vocabulary: the same names and aliases in both --help;
  options   every option out of range (0/-1 epochs, NaN or negative rates, a batch larger than the
            training set, --l-max below the longest sequence, ...) is refused before training, by a
            message that names the option (a table, for train_lra and spt_vs_scratch);
  folder    a second run on a live run's --out is refused naming the pid; a dead run's lock is taken
            over and the partial files of its interrupted save removed;
  threads   1 and 3 OpenMP threads give byte-identical checkpoints;
  signal    SIGTERM writes a resumable checkpoint and exits 143; --resume then ends with the same
            checkpoint, result and metrics as a run never interrupted;
  kill -9   the same after kill -9 (resuming from the last periodic checkpoint);
  resume    a missing checkpoint, changed --seed/--batch/--lr/--data are refused naming each option
            (old and new value) unless --allow-changed; --pretrained given a folder is refused;
  spt       the same signal and resume for spt_vs_scratch's three stages;
  joint     spt_vs_scratch's joint arm (--joint-weight) with --augment: its numbers in results.json and the
            table, and a default run's results.json without any of it;
  disk      a metrics.jsonl whose writes fail (/dev/full) or a result.json that cannot be replaced
            ends the run with an error naming the file.

Usage: run_safety.py --bin BUILD/examples --data-dir FASHION_MNIST_FIXTURES --work SCRATCH
Exits 77 (skipped) when the example programs were not built.
"""
import argparse
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILURES.append(what)


def run(cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=kw.pop("timeout", 240), **kw)
    return p.returncode, p.stdout


def merged(base, args):
    """base (program, then --flag value pairs) with the pairs of args replacing or adding flags: a flag
    given twice would be refused by CLI11 for that reason alone."""
    flags = {}
    for k, v in zip(base[1::2], base[2::2]):
        flags[str(k)] = v
    for k, v in zip(args[0::2], args[1::2]):
        flags[str(k)] = v
    return [base[0]] + [x for kv in flags.items() for x in kv]


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def metrics_steps(path):
    steps = []
    if not path.exists():
        return steps
    for line in path.read_text().splitlines():
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if j.get("event") == "step":
            steps.append(j["step"])
    return steps


def comparable_metrics(path):
    """Records without times (and without the training loss of an epoch a resume split)."""
    out = []
    for line in path.read_text().splitlines():
        j = json.loads(line)
        for k in ("elapsed_s", "seconds", "tokens_per_s", "train"):
            j.pop(k, None)
        out.append(j)
    return out


def wait_for_step(proc, metrics, step, limit=120):
    t0 = time.time()
    while time.time() - t0 < limit:
        if proc.poll() is not None:
            return False
        s = metrics_steps(metrics)
        if s and s[-1] >= step:
            return True
        time.sleep(0.01)
    return False


# The options both trainers register through examples::add_common_options, with every alias.
COMMON_FLAGS = ["--data,--data-dir", "--out,--out-dir", "--device", "--gpu", "--precision", "--loss-scale", "--init",
                "--position", "--d-model", "--layers", "--state", "--heads", "--batch", "--lr", "--ssm-lr",
                "--wd,--weight-decay", "--dt-lr", "--decay-norms-biases", "--dropout", "--layer-dropout",
                "--tie-dropout", "--warmup", "--schedule", "--mask-p", "--spt-loss", "--pool", "--clip", "--seed",
                "--log-every", "--save-every", "--resume", "--allow-changed", "--augment", "--joint-weight",
                "--joint-scheme"]


def help_flags(exe):
    """The option names of each line of exe --help that starts with an option (CLI11's layout)."""
    rc, out = run([exe, "--help"])
    names = set()
    for line in out.splitlines():
        words = line.split()
        if line.startswith("  -") and words:
            names.add(words[0])
    return rc, names


def flag_vocabulary(bin_dir):
    for prog in ("train_lra", "spt_vs_scratch"):
        rc, names = help_flags(bin_dir / prog)
        missing = [f for f in COMMON_FLAGS if f not in names]
        check(rc == 0 and not missing, f"{prog} --help: every common option with its aliases (missing: {missing})")


def options_table(bin_dir, listops, fmnist, work):
    lra = [bin_dir / "train_lra", "--task", "listops", "--data", listops, "--d-model", "8", "--layers", "1",
           "--state", "4", "--heads", "2", "--batch", "8", "--max-steps", "2", "--log-every", "1",
           "--warmup", "1"]
    # (extra arguments, option the message must name[, text the message must hold])
    lra_bad = [
        (["--epochs", "0"], "--epochs"), (["--epochs", "-1"], "--epochs"),
        (["--batch", "1000"], "--batch", "larger than the training set"),
        (["--batch", "0"], "--batch"),
        (["--stage", "pretrain", "--mask-p", "0"], "--mask-p"), (["--mask-p", "-1"], "--mask-p"),
        (["--mask-p", "1"], "--mask-p"),
        (["--ssm-lr", "nan"], "--ssm-lr"), (["--ssm-lr", "-1"], "--ssm-lr"),
        (["--dt-min", "nan"], "--dt-min"), (["--dt-min", "-0.01"], "--dt-min"), (["--dt-max", "0"], "--dt-max"),
        (["--dt-min", "0.1", "--dt-max", "0.01"], "--dt-min"),
        (["--clip", "-1"], "--clip"), (["--clip", "nan"], "--clip"),
        (["--max-steps", "-1"], "--max-steps"), (["--patience", "-1"], "--patience"),
        (["--save-every", "-1"], "--save-every"), (["--head-hidden", "-1"], "--head-hidden"),
        (["--schedule-steps", "-1"], "--schedule-steps"), (["--warmup", "-1"], "--warmup"),
        (["--ff-expand", "0"], "--ff-expand"), (["--ff-expand", "-1"], "--ff-expand"),
        (["--train-fraction", "2"], "--train-fraction"), (["--train-fraction", "0"], "--train-fraction"),
        (["--lr", "inf"], "--lr"), (["--lr", "0"], "--lr"), (["--lr", "abc"], "--lr"),
        (["--wd", "nan"], "--wd"), (["--wd", "-0.1"], "--wd"), (["--dropout", "1"], "--dropout"),
        (["--layer-dropout", "1"], "--layer-dropout"), (["--layer-dropout", "nan"], "--layer-dropout"),
        (["--d-model", "0"], "--d-model"), (["--layers", "0"], "--layers"), (["--state", "0"], "--state"),
        (["--heads", "0"], "--heads"), (["--n-ssm", "-1"], "--n-ssm"), (["--l-max", "-1"], "--l-max"),
        (["--l-max", "10"], "--l-max", "shorter than the longest sequence"),
        (["--log-every", "-1"], "--log-every"), (["--loss-scale", "nan"], "--loss-scale"),
        (["--attn-window", "-1"], "--attn-window"), (["--gpu", "-2"], "--gpu"),
        (["--stage", "joint", "--joint-weight", "0"], "--joint-weight"),
        (["--stage", "joint", "--joint-weight", "-1"], "--joint-weight"),
        (["--stage", "joint", "--joint-weight", "nan"], "--joint-weight"),
        (["--stage", "joint", "--mask-p", "0"], "--mask-p"),
        (["--stage", "joint", "--objective", "causal"], "--stage joint"),
        (["--augment", "flip"], "--augment", "image tasks only"),
        (["--augment", "wobble=3"], "--augment", "unknown augmentation 'wobble'"),
        (["--stage", "joint", "--joint-scheme", "lra2025", "--joint-weight", "2"], "--joint-weight", "lra2025"),
        (["--stage", "joint", "--joint-scheme", "lra2025", "--mask-p", "0.2"], "--mask-p", "lra2025"),
        (["--joint-scheme", "lra2025"], "--joint-scheme", "use --stage joint"),
        (["--stage", "joint", "--joint-scheme", "bert"], "--joint-scheme"),
    ]
    spt = [bin_dir / "spt_vs_scratch", "--data-dir", fmnist, "--models", "s4d", "--train-subset", "16",
           "--val-subset", "8", "--test-subset", "8", "--d-model", "8", "--layers", "1", "--state", "4",
           "--batch", "2", "--pretrain-epochs", "1", "--finetune-epochs", "1", "--log-every", "1"]
    spt_bad = [
        (["--pretrain-epochs", "0"], "--pretrain-epochs"), (["--finetune-epochs", "-1"], "--finetune-epochs"),
        (["--batch", "1000"], "--batch", "larger than the training set (6 examples)"),
        (["--mask-p", "0"], "--mask-p"), (["--mask-p", "-1"], "--mask-p"),
        (["--ssm-lr", "nan"], "--ssm-lr"), (["--ssm-lr", "-1"], "--ssm-lr"), (["--clip", "-1"], "--clip"),
        (["--save-every", "-1"], "--save-every"), (["--warmup", "-1"], "--warmup"), (["--lr", "inf"], "--lr"),
        (["--pretrain-lr", "0"], "--pretrain-lr"), (["--weight-decay", "nan"], "--wd"),
        (["--wd", "nan"], "--wd"), (["--gpu", "-2"], "--gpu"), (["--loss-scale", "-1"], "--loss-scale"), (["--dropout", "1.5"], "--dropout"), (["--train-subset", "-1"], "--train-subset"),
        (["--layer-dropout", "-0.1"], "--layer-dropout"),
        (["--d-model", "0"], "--d-model"), (["--log-every", "-1"], "--log-every"), (["--pool", "median"], "--pool"),
        (["--joint-weight", "0"], "--joint-weight"), (["--joint-weight", "-0.5"], "--joint-weight"),
        (["--joint-weight", "0.5", "--mask-p", "0"], "--mask-p"),
        (["--augment", "translate=28"], "--augment", "smaller than the image"),
        (["--augment", "flip=2"], "--augment", "'flip' is a probability"),
        (["--joint-scheme", "lra2025", "--joint-weight", "0.5"], "--joint-weight", "lra2025"),
    ]
    for name, base, table in (("train_lra", lra, lra_bad), ("spt_vs_scratch", spt, spt_bad)):
        for i, row in enumerate(table):
            args, flag = row[0], row[1]
            out_dir = work / "options" / f"{name}-{i}"
            out_flag = "--out" if name == "train_lra" else "--out-dir"
            rc, out = run(merged(base, args + [out_flag, out_dir]))
            ok = rc != 0 and flag in out and (len(row) < 3 or row[2] in out)
            ok = ok and not (out_dir / "last.safetensors").exists() and not (out_dir / "s4d").exists()
            check(ok, f"{name} {' '.join(args)}: refused naming {flag} (rc {rc}: {out.strip().splitlines()[-1] if out.strip() else ''})")
    # The log reports the data's true longest sequence, the one the --l-max refusal names.
    rc, out = run(merged(lra, ["--l-max", "10", "--out", work / "options" / "lmax"]))
    longest = out.split("longest sequence of the data (")[1].split(" ")[0] if "longest sequence of the data (" in out else "?"
    rc, out = run(lra + ["--out", work / "options" / "ok"])
    check(rc == 0 and f"longest {longest}," in out and 16 <= int(longest) <= 64,
          f"train_lra logs the true longest sequence ({longest}; generated for 16..48 tokens, reader cap 2000)")
    rc, out = run(merged(lra, ["--l-max", longest, "--out", work / "options" / "ok-lmax"]))
    check(rc == 0, f"train_lra accepts --l-max equal to the longest sequence ({longest})")
    # Miralles-Gonzalez et al.'s joint variant and ListOps augmentation run and are recorded.
    rc, out = run(lra + ["--stage", "joint", "--joint-scheme", "lra2025", "--shuffle-operands",
                         "--out", work / "options" / "lra2025"])
    res = json.loads((work / "options" / "lra2025" / "result.json").read_text()) if rc == 0 else {}
    check(rc == 0 and res.get("joint_scheme") == "lra2025" and res.get("shuffle_operands") is True
          and res.get("joint_weight") == 1, f"train_lra --joint-scheme lra2025 --shuffle-operands (rc {rc})")


def thread_counts(bin_dir, listops, work):
    """The same run with 1 and 3 OpenMP threads ends with byte-identical checkpoints (docs/DESIGN.md,
    Determinism): host loops split work over rows, and every sum stays within one thread."""
    for model in ("s4d", "transformer"):
        sums = []
        for t in (1, 3):
            d = work / f"threads-{model}-{t}"
            rc, _ = run([bin_dir / "train_lra", "--task", "listops", "--data", listops, "--model", model,
                         "--d-model", "16", "--layers", "2", "--state", "8", "--heads", "2", "--batch", "8",
                         "--epochs", "2", "--dropout", "0.1", "--out", d], env=dict(os.environ, OMP_NUM_THREADS=str(t)))
            sums.append((d / "last.safetensors").read_bytes() if rc == 0 else None)
        check(sums[0] is not None and sums[0] == sums[1], f"{model}: 1 and 3 threads give identical checkpoints")


def folder_signal_resume(bin_dir, listops, work):
    base = [bin_dir / "train_lra", "--task", "listops", "--data", listops, "--model", "s4d", "--d-model", "32",
            "--layers", "2", "--state", "16", "--batch", "4", "--epochs", "2", "--log-every", "1", "--warmup", "2"]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    full = work / "full"
    rc, out = run(base + ["--out", full], env=env)
    check(rc == 0, f"uninterrupted run (rc {rc})")
    total = metrics_steps(full / "metrics.jsonl")[-1]

    # A live run owns its folder; SIGTERM then stops it with a checkpoint.
    stopped = work / "stopped"
    a = subprocess.Popen([str(c) for c in base + ["--out", stopped]], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env)
    alive = wait_for_step(a, stopped / "metrics.jsonl", 2)
    check(alive, "the run to interrupt is under way")
    rc, out = run(base + ["--out", stopped], env=env)
    check(rc != 0 and f"output folder '{stopped}' is in use by another run (pid {a.pid}" in out,
          f"a second run on a live run's folder is refused naming its pid (rc {rc}: {out.strip()[-200:]})")
    a.send_signal(signal.SIGTERM)
    out_a = a.communicate(timeout=120)[0]
    steps_at_stop = metrics_steps(stopped / "metrics.jsonl")[-1]
    check(a.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM" in out_a and steps_at_stop < total,
          f"SIGTERM: exit {a.returncode}, message, stopped at step {steps_at_stop} of {total}")
    check((stopped / "last.safetensors").exists() and not (stopped / "run.lock").exists(),
          "SIGTERM left last.safetensors and released the lock")
    # A run that died holding the folder: its lock and partial save are cleaned up by the resume.
    ghost = dead_pid()
    (stopped / "run.lock").write_text(f"{ghost}\n")
    (stopped / f"last.safetensors.tmp.{ghost}").write_bytes(b"\0" * 1024)
    rc, out = run(base + ["--out", stopped, "--resume"], env=env)
    check(rc == 0, f"resume after SIGTERM (rc {rc})")
    check(f"took over the lock of pid {ghost}" in out and "removed" in out and
          not (stopped / f"last.safetensors.tmp.{ghost}").exists(), "a dead run's lock and partial file cleaned up")
    same = lambda d: ((d / "last.safetensors").read_bytes() == (full / "last.safetensors").read_bytes() and
                      (d / "best.safetensors").read_bytes() == (full / "best.safetensors").read_bytes())
    result = lambda d: {k: v for k, v in json.loads((d / "result.json").read_text()).items()
                        if k not in ("seconds", "best_checkpoint")}
    check(same(stopped) and result(stopped) == result(full), "SIGTERM + resume: checkpoints and result identical")
    check(comparable_metrics(stopped / "metrics.jsonl") == comparable_metrics(full / "metrics.jsonl"),
          "SIGTERM + resume: metrics.jsonl as if never interrupted (no repeated steps)")

    # kill -9: the periodic checkpoint is where the resume starts; the steps after it are not repeated.
    killed = work / "killed"
    b = subprocess.Popen([str(c) for c in base + ["--out", killed, "--save-every", "3"]],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    check(wait_for_step(b, killed / "metrics.jsonl", 7), "the run to kill is under way")
    b.kill()
    b.wait()
    rc, out = run(base + ["--out", killed, "--save-every", "3", "--resume"], env=env)
    check(rc == 0 and "took over the lock of pid" in out, f"resume after kill -9 takes over the lock (rc {rc})")
    check(same(killed) and result(killed) == result(full), "kill -9 + resume: checkpoints and result identical")
    steps = metrics_steps(killed / "metrics.jsonl")
    check(steps == sorted(set(steps)) and steps[-1] == total, "kill -9 + resume: each step logged once")

    # Resume refusals.
    rc, out = run(base + ["--out", work / "nothing", "--resume"])
    check(rc != 0 and f"'{work / 'nothing' / 'last.safetensors'}' does not exist" in out,
          "--resume without last.safetensors is refused naming it")
    other_data = work / "listops-copy"
    shutil.copytree(listops, other_data, dirs_exist_ok=True)
    rc, out = run(merged(base, ["--data", other_data, "--batch", "2", "--out", full, "--seed", "5",
                                "--lr", "0.002"]) + ["--resume"])
    want = ["--batch: checkpoint 4, now 2", f'--data: checkpoint "{listops}", now "{other_data}"',
            "--lr: checkpoint 0.001, now 0.002", "--seed: checkpoint 0, now 5"]
    check(rc != 0 and all(w in out for w in want),
          f"changed --seed/--batch/--lr/--data refused naming each ({out.strip()[-400:]})")
    rc, out = run(base + ["--out", full, "--resume", "--lr", "0.002", "--allow-changed", "lr"])
    check(rc == 0, f"--allow-changed lr accepts the changed --lr (rc {rc})")
    rc, out = run(base + ["--out", work / "ft", "--stage", "finetune", "--pretrained", full])
    check(rc != 0 and f"--pretrained '{full}' is a folder" in out, "--pretrained FOLDER refused")


def disk(bin_dir, listops, fmnist, work):
    base = [bin_dir / "train_lra", "--task", "listops", "--data", listops, "--d-model", "8", "--layers", "1",
            "--state", "4", "--batch", "8", "--max-steps", "2", "--log-every", "1"]
    full_log = work / "disk-metrics"
    full_log.mkdir(parents=True, exist_ok=True)
    (full_log / "metrics.jsonl").symlink_to("/dev/full")
    rc, out = run(base + ["--out", full_log])
    check(rc != 0 and f"writing metrics file '{full_log / 'metrics.jsonl'}' failed: No space left on device" in out,
          f"train_lra: metrics.jsonl on a full disk is an error naming it (rc {rc})")
    blocked = work / "disk-result"
    (blocked / "result.json").mkdir(parents=True, exist_ok=True)
    rc, out = run(base + ["--out", blocked])
    check(rc != 0 and f"writing '{blocked / 'result.json'}' failed" in out,
          f"train_lra: result.json that cannot be written is an error naming it (rc {rc})")
    spt = [bin_dir / "spt_vs_scratch", "--data-dir", fmnist, "--models", "s4d", "--mode", "scratch",
           "--train-subset", "16", "--val-subset", "8", "--test-subset", "8", "--d-model", "8", "--layers", "1",
           "--state", "4", "--batch", "2", "--finetune-epochs", "1"]
    spt_log = work / "disk-spt-metrics"
    spt_log.mkdir(parents=True, exist_ok=True)
    (spt_log / "metrics.jsonl").symlink_to("/dev/full")
    rc, out = run(spt + ["--out-dir", spt_log])
    check(rc != 0 and f"writing metrics file '{spt_log / 'metrics.jsonl'}' failed" in out,
          f"spt_vs_scratch: metrics.jsonl on a full disk is an error naming it (rc {rc})")
    spt_res = work / "disk-spt-results"
    (spt_res / "results.json").mkdir(parents=True, exist_ok=True)
    rc, out = run(spt + ["--out-dir", spt_res])
    check(rc != 0 and f"writing '{spt_res / 'results.json'}' failed" in out,
          f"spt_vs_scratch: results.json that cannot be written is an error naming it (rc {rc})")
    # A folder held by another process (here: this script, with the same flock protocol).
    held = work / "held"
    held.mkdir(parents=True, exist_ok=True)
    with open(held / "run.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.write(f"{os.getpid()}\n")
        f.flush()
        rc, out = run(spt + ["--out-dir", held])
        check(rc != 0 and f"output folder '{held}' is in use by another run (pid {os.getpid()}" in out,
              f"spt_vs_scratch: a held folder is refused naming the holder's pid (rc {rc})")
    rc, out = run(spt + ["--out-dir", work / "spt-nothing", "--resume"])
    check(rc == 0 and "holds no checkpoint yet, starting a new run" in out,
          "spt_vs_scratch --resume on an empty folder starts a new run and says so")
    rc, out = run(spt + ["--out-dir", work / "spt-nothing", "--resume", "--seed", "3"])
    check(rc != 0 and "--seed: checkpoint 2222, now 3" in out, "spt_vs_scratch: a changed --seed is refused on resume")


def spt_signal(bin_dir, fmnist, work):
    """spt_vs_scratch: SIGTERM in the middle of its stages, --resume, the same table as a run never stopped."""
    base = [bin_dir / "spt_vs_scratch", "--data-dir", fmnist, "--models", "s4d", "--train-subset", "6",
            "--val-subset", "4", "--test-subset", "4", "--d-model", "8", "--layers", "1", "--state", "4",
            "--batch", "2", "--pretrain-epochs", "30", "--finetune-epochs", "30", "--log-every", "1",
            "--dropout", "0.1"]
    full, stopped = work / "spt-full", work / "spt-stopped"
    rc, _ = run(base + ["--out-dir", full])
    check(rc == 0, f"spt_vs_scratch uninterrupted (rc {rc})")
    p = subprocess.Popen([str(c) for c in base + ["--out-dir", stopped]], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    check(wait_for_step(p, stopped / "metrics.jsonl", 30), "spt_vs_scratch run under way")
    p.send_signal(signal.SIGTERM)
    out = p.communicate(timeout=120)[0]
    check(p.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM" in out and "--resume" in out,
          f"spt_vs_scratch: SIGTERM exits {p.returncode} with a message")
    rc, _ = run(base + ["--out-dir", stopped, "--resume"])
    keep = lambda d: {m: {st: {k: v for k, v in r.items() if k not in ("seconds", "cpu_seconds")}
                           for st, r in stages.items()}
                      for m, stages in json.loads((d / "results.json").read_text())["models"].items()}
    check(rc == 0 and keep(stopped) == keep(full), "spt_vs_scratch: SIGTERM + resume gives the same results")


def joint_arm(bin_dir, fmnist, work):
    """spt_vs_scratch --joint-weight: a third arm per model in results.json and the table; a run without the
    option writes neither (its outputs stay those of before)."""
    base = [bin_dir / "spt_vs_scratch", "--data-dir", fmnist, "--models", "s4d", "--train-subset", "16",
            "--val-subset", "8", "--test-subset", "8", "--d-model", "8", "--layers", "1", "--state", "4",
            "--batch", "4", "--pretrain-epochs", "1", "--finetune-epochs", "1", "--log-every", "1",
            "--mode", "scratch"]
    rc, out = run(base + ["--joint-weight", "0.5", "--augment", "translate=2,flip", "--out-dir", work / "joint"])
    res = json.loads((work / "joint" / "results.json").read_text()) if rc == 0 else {}
    arm = res.get("models", {}).get("s4d", {}).get("joint", {})
    check(rc == 0 and "test_acc" in arm and arm.get("steps", 0) > 0 and res["options"].get("joint_weight") == 0.5
          and res["options"].get("augment") == "translate=2,flip",
          f"spt_vs_scratch --joint-weight: the joint arm in results.json (rc {rc})")
    check("joint acc" in out and "joint (longseq): supervised + 0.5 x masked denoising" in out,
          "spt_vs_scratch --joint-weight: joint columns in the table")
    log = [json.loads(line) for line in (work / "joint" / "metrics.jsonl").read_text().splitlines()] if rc == 0 else []
    check(any(r.get("event") == "epoch" and r.get("run") == "s4d/joint" and "denoise" in r for r in log),
          "spt_vs_scratch --joint-weight: the joint stage's epoch records carry the denoising loss")
    rc, out = run(base + ["--joint-scheme", "lra2025", "--out-dir", work / "lra2025"])
    res = json.loads((work / "lra2025" / "results.json").read_text()) if rc == 0 else {}
    check(rc == 0 and "test_acc" in res.get("models", {}).get("s4d", {}).get("joint", {})
          and res["options"].get("joint_scheme") == "lra2025" and res["options"].get("joint_weight") == 1
          and "joint (lra2025): supervised + 1 x masked denoising (p = 0.30" in out,
          f"spt_vs_scratch --joint-scheme lra2025: a joint arm at weight 1 and p 0.3 (rc {rc})")
    rc, out = run(base + ["--out-dir", work / "plain"])
    res = json.loads((work / "plain" / "results.json").read_text()) if rc == 0 else {}
    check(rc == 0 and "joint" not in res.get("models", {}).get("s4d", {}) and "joint_weight" not in res.get("options", {})
          and "augment" not in res.get("options", {}) and "joint" not in out,
          "spt_vs_scratch without --joint-weight: no joint arm, no joint columns")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    a = ap.parse_args()
    for exe in ("train_lra", "spt_vs_scratch", "lra_data"):
        if not (a.bin / exe).exists():
            print(f"skipped: {a.bin / exe} was not built")
            return 77
    shutil.rmtree(a.work, ignore_errors=True)
    a.work.mkdir(parents=True)
    work = a.work.resolve()
    listops = work / "listops"
    rc, out = run([a.bin / "lra_data", "generate", "--task", "listops", "--out", listops, "--n", "96", "--n-val", "16",
                   "--n-test", "16", "--min-length", "16", "--max-length", "48", "--max-depth", "3", "--seed", "3"])
    if rc != 0:
        print(out)
        return 1
    flag_vocabulary(a.bin)
    options_table(a.bin, listops, a.data_dir.resolve(), work)
    thread_counts(a.bin, listops, work)
    long = work / "listops-long"  # long enough a run that a signal reaches it mid-way
    rc, out = run([a.bin / "lra_data", "generate", "--task", "listops", "--out", long, "--n", "240", "--n-val", "16",
                   "--n-test", "16", "--min-length", "100", "--max-length", "400", "--max-depth", "4", "--seed", "4"])
    if rc != 0:
        print(out)
        return 1
    folder_signal_resume(a.bin, long, work)
    disk(a.bin, listops, a.data_dir.resolve(), work)
    spt_signal(a.bin, a.data_dir.resolve(), work)
    joint_arm(a.bin, a.data_dir.resolve(), work)
    print(f"{len(FAILURES)} failure(s)")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
