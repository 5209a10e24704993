# Sourced by the scripts (not run): sets LONGSEQ_PYTHON, the interpreter whose packages
# scripts/install-deps.sh installed. Debian's python3-numpy and python3-matplotlib are visible to Debian's
# /usr/bin/python3 only; a pyenv shim, conda or a virtual environment first on PATH does not see them, so
# the scripts never run a bare `python3`. Set LONGSEQ_PYTHON to use another interpreter that has them.
LONGSEQ_PYTHON=${LONGSEQ_PYTHON:-/usr/bin/python3}
if [[ ! -x "$LONGSEQ_PYTHON" ]]; then
  echo "LONGSEQ_PYTHON=$LONGSEQ_PYTHON is not an executable Python interpreter" >&2
  return 1 2>/dev/null || exit 1
fi
export LONGSEQ_PYTHON
