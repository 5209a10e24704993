#!/usr/bin/env python3
"""Checks that the library's headers include only their own folder and folders on a lower layer.

The layers come from the folder table of docs/DESIGN.md (its "layer" column), so the doc is the single
source: a header in folder A may include a header in folder B only if A == B or layer(B) < layer(A).
A folder's cuda/ subfolder belongs to the folder, and CUDA headers (*.cuh) live only there. The umbrella
header longseq.hpp includes everything.
Every violation is printed as file:line: A (layer a) -> B (layer b), and the exit status is 1.
It also checks that every __global__ kernel a header defines is a template or inline: a plain one is
defined again by each translation unit that includes it, and a program of two such files fails to link.

Usage: check_layering.py [--root REPO] [--self-test]
"""
import argparse
import os
import re
import sys

UMBRELLA = "longseq.hpp"
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
ROW_RE = re.compile(r"^\|\s*(\d+)\s*\|\s*`([a-z_]+)/`\s*\|")


def read_layers(design_md):
    """Folder -> layer, from the rows `| <layer> | `<folder>/` | ...` of DESIGN.md's folder table."""
    layers = {}
    with open(design_md, encoding="utf-8") as f:
        for line in f:
            m = ROW_RE.match(line)
            if m:
                folder = m.group(2)
                if folder in layers:
                    raise SystemExit(f"{design_md}: folder '{folder}' appears twice in the folder table")
                layers[folder] = int(m.group(1))
    if not layers:
        raise SystemExit(f"{design_md}: no folder table with a layer column ('| 0 | `core/` | ...') found")
    return layers


def folder_of(rel):
    """The top folder of a path relative to include/longseq ('ssm/cuda/s4.cuh' -> 'ssm'); None at top."""
    parts = rel.split("/")
    return parts[0] if len(parts) > 1 else None


def check(include_root, layers):
    """Returns (violations, number of edges checked); a violation is a printable line."""
    errors, edges = [], 0
    for dirpath, _, files in os.walk(include_root):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, include_root).replace(os.sep, "/")
            if rel == UMBRELLA or not name.endswith((".hpp", ".cuh", ".h")):
                continue
            src = folder_of(rel)
            if name.endswith(".cuh") and "cuda" not in rel.split("/")[:-1]:
                errors.append(f"{rel}: a CUDA header outside its folder's cuda/")
            if src is None:
                errors.append(f"{rel}: a header outside every folder (only {UMBRELLA} may sit at the top)")
                continue
            if src not in layers:
                errors.append(f"{rel}: folder '{src}/' is not in docs/DESIGN.md's folder table")
                continue
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE_RE.match(line)
                    if not m:
                        continue
                    target = os.path.normpath(os.path.join(dirpath, m.group(1)))
                    trel = os.path.relpath(target, include_root).replace(os.sep, "/")
                    if trel.startswith(".."):
                        errors.append(f"{rel}:{lineno}: includes '{m.group(1)}', outside include/longseq")
                        continue
                    if not os.path.exists(target):
                        errors.append(f"{rel}:{lineno}: includes '{m.group(1)}', which does not exist")
                        continue
                    dst = folder_of(trel)
                    edges += 1
                    if dst == src:
                        continue
                    if dst is None:
                        errors.append(f"{rel}:{lineno}: {src} -> {trel} (the umbrella header is for users)")
                    elif dst not in layers:
                        errors.append(f"{rel}:{lineno}: {src} -> {dst}, a folder not in the table")
                    elif layers[dst] >= layers[src]:
                        kind = "sideways" if layers[dst] == layers[src] else "upward"
                        errors.append(f"{rel}:{lineno}: {kind} edge {src} (layer {layers[src]}) -> "
                                      f"{dst} (layer {layers[dst]}) via '{m.group(1)}'")
    return errors, edges


def check_kernels(include_root):
    """__global__ kernels in headers that are neither templates nor inline (or static)."""
    errors = []
    for dirpath, _, names in os.walk(include_root):
        for name in sorted(names):
            if not name.endswith((".hpp", ".cuh")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, include_root).replace(os.sep, "/")
            prev = ""
            with open(path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    code = line.split("//")[0]
                    if "__global__" in code and not re.search(r"\b(template|inline|static)\b", code) \
                            and not re.search(r"\btemplate\b", prev):
                        errors.append(f"{rel}:{n}: a __global__ kernel that is neither a template nor inline "
                                      "(each translation unit that includes it would define it again)")
                    if code.strip():
                        prev = code
    return errors


def check_folders_listed(include_root, layers):
    """Every folder on disk is in the table and every folder of the table exists."""
    on_disk = {d for d in os.listdir(include_root) if os.path.isdir(os.path.join(include_root, d))}
    errors = [f"folder '{d}/' is not in docs/DESIGN.md's folder table" for d in sorted(on_disk - set(layers))]
    errors += [f"docs/DESIGN.md lists '{d}/', which is not a folder of include/longseq"
               for d in sorted(set(layers) - on_disk)]
    return errors


def self_test():
    """Builds a small tree with one allowed, one sideways and one upward edge and checks the verdicts."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        inc = os.path.join(tmp, "include", "longseq")
        for d in ("core", "ops", "data", "nn/cuda"):
            os.makedirs(os.path.join(inc, d))
        files = {
            "core/a.hpp": "",
            "ops/b.hpp": '#include "../core/a.hpp"\n',
            "data/c.hpp": '#include "../core/a.hpp"\n#include "../ops/b.hpp"\n',
            "nn/cuda/d.cuh": '#include "../../ops/b.hpp"\n#include "../e.hpp"\n',
            "nn/e.hpp": '#include "cuda/d.cuh"\n',
            "core/f.hpp": '  # include "../nn/e.hpp"\n',
            "ops/g.cuh": "",
            "nn/cuda/k.cuh": ("template <class T>\n__global__ void a(T* x) {}\n__global__ inline void b() {}\n"
                              "// a comment naming __global__\n__global__ void c() {}\n"),
            UMBRELLA: '#include "nn/e.hpp"\n',
        }
        for rel, text in files.items():
            with open(os.path.join(inc, rel), "w", encoding="utf-8") as f:
                f.write(text)
        layers = {"core": 0, "ops": 1, "data": 1, "nn": 2}
        errors, edges = check(inc, layers)
        expect = ["data/c.hpp:2: sideways edge data (layer 1) -> ops (layer 1) via '../ops/b.hpp'",
                  "core/f.hpp:1: upward edge core (layer 0) -> nn (layer 2) via '../nn/e.hpp'",
                  "ops/g.cuh: a CUDA header outside its folder's cuda/"]
        if sorted(errors) != sorted(expect) or edges != 7:
            print("self-test failed:", errors, edges)
            return 1
        kernels = check_kernels(inc)
        if kernels != ["nn/cuda/k.cuh:5: a __global__ kernel that is neither a template nor inline "
                       "(each translation unit that includes it would define it again)"]:
            print("self-test failed: kernels", kernels)
            return 1
        if check_folders_listed(inc, {"core": 0, "ops": 1, "nn": 2, "heads": 3}) != [
                "folder 'data/' is not in docs/DESIGN.md's folder table",
                "docs/DESIGN.md lists 'heads/', which is not a folder of include/longseq"]:
            print("self-test failed: folder listing")
            return 1
    print("check_layering self-test: ok")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--self-test", action="store_true", help="check the checker on a made-up tree")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    include_root = os.path.join(args.root, "include", "longseq")
    layers = read_layers(os.path.join(args.root, "docs", "DESIGN.md"))
    errors = check_folders_listed(include_root, layers)
    more, edges = check(include_root, layers)
    errors += more + check_kernels(include_root)
    for e in errors:
        print(e)
    if errors:
        print(f"layering: {len(errors)} violation(s) of docs/DESIGN.md's folder table or of the kernel rule")
        return 1
    by_layer = {}
    for d, n in layers.items():
        by_layer.setdefault(n, []).append(d)
    order = " < ".join(", ".join(sorted(by_layer[n])) for n in sorted(by_layer))
    print(f"layering: {edges} includes obey the folder layers ({order})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
