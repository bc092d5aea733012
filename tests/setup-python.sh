#!/usr/bin/env bash
# Creates or updates the Python virtual environment with the tools the tests
# drive: python-openstackclient (the `openstack` CLI) and Tempest, at the
# versions pinned in tests/python-requirements.txt and
# tests/python-constraints.txt.
#
# Usage: tests/setup-python.sh
#   OXSTACK_VENV  where the venv lives [default: REPO/.venv]
#   PYTHON        interpreter that creates a new venv [default: python3]
#
# A stamp file in the venv stores a hash of both requirement files and the
# interpreter version, so a second run with nothing changed returns at once.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${OXSTACK_VENV:-$repo/.venv}"
python="${PYTHON:-python3}"
requirements="$repo/tests/python-requirements.txt"
constraints="$repo/tests/python-constraints.txt"
stamp="$venv/.oxstack-requirements.sha256"

# A venv whose interpreter went missing (for example, a removed pyenv
# version) cannot be repaired in place, so it is rebuilt.
if [[ -e "$venv" && ! -x "$venv/bin/python" ]] || { [[ -e "$venv" ]] && ! "$venv/bin/python" -c 'import sys' 2>/dev/null; }; then
    echo "setup-python: $venv has no working interpreter; recreating it"
    rm -rf "$venv"
fi

if [[ ! -d "$venv" ]]; then
    if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
        echo "setup-python: $python cannot create a venv. Install python3-venv (apt-get install python3-venv)." >&2
        exit 1
    fi
    echo "setup-python: creating $venv"
    "$python" -m venv "$venv"
fi

want="$(cat "$requirements" "$constraints" | sha256sum | cut -d' ' -f1) $("$venv/bin/python" -c 'import platform; print(platform.python_version())')"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/openstack" && -x "$venv/bin/tempest" ]]; then
    echo "setup-python: $venv is up to date"
    exit 0
fi

echo "setup-python: installing $(grep -v '^#' "$requirements" | xargs) into $venv"
started=$SECONDS
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$requirements" -c "$constraints"
echo "$want" > "$stamp"
echo "setup-python: done in $((SECONDS - started)) s"
