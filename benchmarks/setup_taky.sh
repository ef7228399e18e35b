#!/usr/bin/env bash
# Create benchmarks/.venv-taky with taky 0.10, the peer Accord is benchmarked against.
# taky lives in its own venv so its pins (lxml, flask, ...) never touch the project's venv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-taky"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
# setuptools: taky 0.10 still imports pkg_resources at start-up.
"$venv/bin/python" -m pip install --quiet "taky==0.10" "setuptools<81"
"$venv/bin/python" -c "import taky.cot.server; print('taky', __import__('taky').__version__, 'ready in $venv')"
