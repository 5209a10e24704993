#!/usr/bin/env python3
"""Checks that every ```cpp block of a markdown page is code that the build compiles.

Each ```cpp fence must follow a line `<!-- compiled: PATH -->` (PATH relative to the repository root, one of
the programs the build compiles: tests/docs/*.cpp, tests/docs/*.cu or examples/*.cpp), and the block's lines
must appear in PATH as consecutive lines, either as written or indented as a whole (a snippet written at
file scope in the doc may sit inside main() in the program). Prints each block that fails with its line.

Usage: check_snippets.py --root REPO docs/usage.md [more pages]   |   check_snippets.py --self-test
"""
import argparse
import os
import re
import sys
import tempfile

MARK = re.compile(r"^<!--\s*compiled:\s*(\S+)\s*-->\s*$")
COMPILED = re.compile(r"^(tests/docs/[\w.-]+\.(cpp|cu)|examples/[\w.-]+\.cpp)$")


def blocks(text):
    """(line number of the fence, the marker's path or None, the block's lines) for every ```cpp block."""
    lines = text.split("\n")
    out, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```cpp":
            start = i
            mark = MARK.match(lines[i - 1]) if i > 0 else None
            j = i + 1
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            out.append((start + 1, mark.group(1) if mark else None, lines[i + 1:j]))
            i = j + 1
        else:
            i += 1
    return out


def contained(block, program):
    """Whether the block's lines are consecutive lines of the program, possibly indented as a whole."""
    for indent in range(0, 9, 2):
        pad = " " * indent
        want = "\n".join(pad + l if l else l for l in block)
        if "\n" + want + "\n" in "\n" + program + "\n":
            return True
    return False


def check(root, page):
    errors = []
    with open(os.path.join(root, page), encoding="utf-8") as f:
        text = f.read()
    found = blocks(text)
    for line, path, block in found:
        where = f"{page}:{line}"
        if path is None:
            errors.append(f"{where}: a cpp block without '<!-- compiled: PATH -->' on the line before it")
        elif not COMPILED.match(path):
            errors.append(f"{where}: '{path}' is not a program the build compiles (tests/docs/*.cpp|cu, examples/*.cpp)")
        elif not os.path.exists(os.path.join(root, path)):
            errors.append(f"{where}: '{path}' does not exist")
        else:
            with open(os.path.join(root, path), encoding="utf-8") as f:
                if not contained(block, f.read()):
                    errors.append(f"{where}: the block differs from every run of lines in {path}")
    return errors, len(found)


def self_test():
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "tests", "docs"))
        with open(os.path.join(root, "tests", "docs", "p.cpp"), "w") as f:
            f.write("int x = 1;\nint main() {\n  int y = 2;\n  return y - 2;\n}\n")
        page = ("a\n<!-- compiled: tests/docs/p.cpp -->\n```cpp\nint y = 2;\nreturn y - 2;\n```\n"
                "```cpp\nint x = 1;\n```\n"
                "<!-- compiled: tests/docs/p.cpp -->\n```cpp\nint y = 3;\n```\n"
                "<!-- compiled: docs/p.cpp -->\n```cpp\nint x = 1;\n```\n")
        with open(os.path.join(root, "page.md"), "w") as f:
            f.write(page)
        errors, n = check(root, "page.md")
        lines = [e.split(":")[1] for e in errors]
        if n != 4 or lines != ["7", "11", "15"]:
            print("self-test failed:", n, errors)
            return 1
    print("check_snippets self-test: ok")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("pages", nargs="*", default=["docs/usage.md"])
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    errors, total = [], 0
    for page in args.pages:
        e, n = check(args.root, page)
        errors += e
        total += n
    for e in errors:
        print(e)
    if errors:
        return 1
    print(f"snippets: {total} cpp blocks in {', '.join(args.pages)} match the programs that compile them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
