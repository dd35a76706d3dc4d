#!/bin/sh
# Creates the Python venv of the MCP servers that the end-to-end tests run (issue 18) at
# $1 (default .build/mcp-venv), from Tests/MCPFixtures/requirements.txt, every version pinned.
# Does nothing when the venv already holds exactly those requirements.
set -eu
cd "$(dirname "$0")/.."
venv=${1:-.build/mcp-venv}
requirements=Tests/MCPFixtures/requirements.txt
stamp="$venv/.requirements"
if [ -x "$venv/bin/mcp-server-time" ] && cmp -s "$requirements" "$stamp"; then exit 0; fi
# Debian's python3 makes venvs only with python3-venv.
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    ./scripts/install-deps.sh python3-venv
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements"
cp "$requirements" "$stamp"
echo "MCP test servers installed in $venv"
