#!/usr/bin/env python3
# Runs the command after "--" when every file before it exists; otherwise exits 77 (ctest: skipped).
import os
import subprocess
import sys

sep = sys.argv.index("--")
need, cmd = sys.argv[1:sep], sys.argv[sep + 1:]
absent = [p for p in need if not os.access(p, os.X_OK)]
if absent:
    print(f"skipped: not built: {' '.join(absent)}")
    sys.exit(77)
sys.exit(subprocess.run(cmd, check=False).returncode)
