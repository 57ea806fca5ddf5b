#!/usr/bin/env bash
# The two commands that do everything on a fresh machine:
#   ./run.sh test   create env/ if missing, install rigl_tf[test], run all tests
#                   (in 2 pytest-xdist processes; RIGL_TF_TEST_WORKERS=0: one)
#   ./run.sh demo   same set-up, then train a sparse LeNet on offline digits data
# Extra arguments after `test` go to pytest; after `demo`, to mnist/train_eval.py.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"

setup_env() {
  if [[ ! -x env/bin/python ]]; then
    echo "Creating virtual environment in env/ ..."
    "$PYTHON" -m venv env
  fi
  # Re-install only when setup.py changed since the last install.
  local stamp=env/.installed
  if [[ ! -f "$stamp" || setup.py -nt "$stamp" ]]; then
    echo "Installing rigl_tf and its test extras into env/ (first time takes a few minutes) ..."
    env/bin/python -m pip install --quiet --upgrade pip
    env/bin/python -m pip install --quiet -e '.[test]'
    touch "$stamp"
  fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
  test)
    setup_env
    # Two test processes (pytest-xdist; tests sharing a class set-up stay
    # together, see conftest.py): TF's tracing and XLA compiles are mostly
    # single-threaded, so on 2 cores the suite takes about 2/3 of the serial
    # time. RIGL_TF_TEST_WORKERS=0 runs it in this process. exec: pytest's
    # exit status is the script's.
    exec env/bin/python -m pytest -n "${RIGL_TF_TEST_WORKERS:-2}" \
      --dist loadgroup "$@"
    ;;
  demo)
    setup_env
    out="$(mktemp -d -t rigl_tf_demo.XXXXXX)"
    exec env/bin/python mnist/train_eval.py \
      --gin_config=configs/mnist/quickstart_digits.gin \
      --output_dir="$out" "$@"
    ;;
  *)
    echo "usage: ./run.sh test [pytest args] | ./run.sh demo [train_eval args]" >&2
    exit 2
    ;;
esac
