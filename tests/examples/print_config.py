"""train_lra --print-config against a recorded fixture, and --preset-file (ctest examples_print_config).

  presets   --print-config of --preset paper for every task (the pathfinder task at its three
            resolutions), model and stage, and a few runs without a preset, equal line for line to
            fixtures/print_config.txt (recorded when the presets became data files; re-recorded with
            --write only for a deliberate change, whose diff must show just that change);
  file      --preset-file with each built-in file (examples/presets/*.json) resolves the same settings
            as --preset paper;
  errors    a missing, malformed or wrong preset file is refused naming the file, the key and what was
            expected.

Usage: print_config.py --bin BUILD/examples --src SOURCE_ROOT --work SCRATCH [--write]
--write records the fixture from the binary instead of comparing. Exits 77 when train_lra was not built.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

MODELS = ["s4", "s4d", "dss", "dlr", "conv", "transformer"]
STAGES = ["pretrain", "finetune", "scratch"]
TASKS = [("listops", []), ("text", []), ("retrieval", []), ("image", []), ("pathfinder", []),
         ("pathfinder", ["--l-max", "16384"]), ("pathfinder", ["--l-max", "65536"])]
# Without a preset: the defaults and how they depend on the task.
PLAIN = [["--task", t, "--model", m, "--stage", s] for t in ("listops", "image") for m in ("s4", "transformer")
         for s in ("pretrain", "scratch")]


def configurations():
    for task, extra in TASKS:
        for m in MODELS:
            for s in STAGES:
                yield ["--task", task, "--model", m, "--stage", s, "--preset", "paper"] + extra
    yield from PLAIN


def print_config(exe, args):
    p = subprocess.run([str(exe)] + args + ["--print-config"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def record(exe):
    out = []
    for args in configurations():
        rc, text, err = print_config(exe, args)
        if rc != 0:
            raise SystemExit(f"train_lra {' '.join(args)} --print-config failed: {err}")
        out.append("### " + " ".join(args) + "\n" + text)
    return "".join(out)


def sections(text):
    got = {}
    for block in text.split("### ")[1:]:
        head, _, body = block.partition("\n")
        got[head] = body
    return got


FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILURES.append(what)


def without(text, *prefixes):
    return [line for line in text.splitlines() if not line.startswith(prefixes)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", type=Path, required=True)
    ap.add_argument("--src", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    exe = a.bin / "train_lra"
    fixture = a.src / "tests" / "examples" / "fixtures" / "print_config.txt"
    if not exe.exists():
        print(f"skipped: {exe} was not built")
        return 77
    if a.write:
        fixture.write_text(record(exe))
        print(f"wrote {fixture}")
        return 0

    want, got = sections(fixture.read_text()), sections(record(exe))
    check(list(want) == list(got), f"the same {len(want)} configurations as the fixture")
    for head, body in want.items():
        if got.get(head) != body:
            diff = [f"  want {w!r}\n  got  {g!r}" for w, g in zip(body.splitlines(), got.get(head, "").splitlines())
                    if w != g]
            check(False, f"--print-config of {head} differs from the fixture:\n" + "\n".join(diff[:5]))
    check(not FAILURES, f"--print-config of {len(want)} configurations unchanged")

    # Each built-in file given as --preset-file: the settings of --preset paper.
    a.work.mkdir(parents=True, exist_ok=True)
    lengths = {"pathx": ["--l-max", "16384"], "pathx256": ["--l-max", "65536"]}
    for f in sorted((a.src / "examples" / "presets").glob("*.json")):
        task = json.loads(f.read_text())["task"]
        for m in ("s4", "transformer", "dlr"):
            base = ["--task", task, "--model", m, "--stage", "finetune"] + lengths.get(f.stem, [])
            _, paper, _ = print_config(exe, base + ["--preset", "paper"])
            rc, mine, err = print_config(exe, base + ["--preset-file", str(f)])
            check(rc == 0 and "preset_file = " + str(f) in mine and
                  without(mine, "preset =", "preset_file =") == without(paper, "preset ="),
                  f"--preset-file {f.name} --model {m}: the settings of --preset paper {err.strip()}")

    # A user's file: its values win over the defaults, flags over its values; bad files are refused by name.
    listops = json.loads((a.src / "examples" / "presets" / "listops.json").read_text())
    mine = json.loads(json.dumps(listops))
    mine["families"]["s4"]["stages"]["pretrain"]["lr"] = 0.0123
    mine["families"]["s4"]["layers"] = 3
    good = a.work / "mine.json"
    good.write_text(json.dumps(mine))
    base = ["--task", "listops", "--model", "s4d", "--stage", "pretrain", "--preset-file", str(good)]
    rc, out, err = print_config(exe, base + ["--layers", "5"])
    check(rc == 0 and "lr = 0.0123  (preset)" in out and "layers = 5  (command line)" in out and
          "preset_row = listops/s4" in out, f"a user's preset file is applied, flags win {err.strip()}")

    def bad(name, edit, *expect, text=None):
        doc = json.loads(json.dumps(listops))
        edit(doc)
        path = a.work / f"{name}.json"
        path.write_text(text if text is not None else json.dumps(doc))
        rc, _, err = print_config(exe, ["--task", "listops", "--model", "s4", "--stage", "pretrain",
                                        "--preset-file", str(path)])
        check(rc != 0 and str(path) in err and all(e in err for e in expect),
              f"preset file {name}: refused naming {', '.join(expect)} ({err.strip()})")

    bad("not-json", lambda d: None, "not valid JSON", text="{ \"name\": ")
    bad("missing-key", lambda d: d["families"]["s4"]["stages"]["pretrain"].pop("lr"),
        "'families.s4.stages.pretrain.lr' is missing")
    bad("wrong-type", lambda d: d["families"]["s4"].update(layers="eight"),
        "'families.s4.layers'", "expected an integer >= 1", "\"eight\"")
    bad("negative-lr", lambda d: d["families"]["s4"]["stages"]["scratch"].update(lr=-1),
        "'families.s4.stages.scratch.lr'", "expected a number in (0, inf)")
    bad("bad-choice", lambda d: d["families"]["s4"].update(norm="group"), "'families.s4.norm'",
        "expected one of layer, batch")
    bad("unknown-key", lambda d: d["families"]["s4"].update(lerning_rate=1), "unknown key 'families.s4.lerning_rate'")
    bad("no-family", lambda d: d["families"].pop("s4"), "no key 'families.s4'")
    bad("other-task", lambda d: d.update(task="text"), "key 'task'", "is for --task text", "--task listops")
    rc, _, err = print_config(exe, ["--task", "listops", "--model", "s4", "--preset-file", str(a.work / "none.json")])
    check(rc != 0 and "none.json' cannot be read" in err, f"a missing preset file is refused by name ({err.strip()})")
    rc, _, err = print_config(exe, ["--task", "listops", "--preset", "paper", "--preset-file", str(good)])
    check(rc != 0 and "--preset" in err, "--preset and --preset-file together are refused")

    print(f"{len(FAILURES)} failure(s)")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
