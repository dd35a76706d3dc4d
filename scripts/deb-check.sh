#!/bin/sh
# The Debian package (part of `make check-ops`, as root): builds it with `make deb`, requires
# `lintian` to report no error, installs it with `apt-get install ./agentd_*.deb`, checks that
# `ldd /usr/bin/agentd` resolves only into the system library directories (the Swift runtime
# is linked in), that `agentd --version` and `agentd --check` work on the installed files, then
# removes (`dpkg -r`, the conffile stays) and purges it (`dpkg -P`, nothing of it stays).
# Refuses to run where an agentd package other than one it installed is present.
set -eu
cd "$(dirname "$0")/.."

fail() {
    echo "deb-check: FAIL: $*" >&2
    exit 1
}
step() { echo "check-ops: $*"; }

if [ "$(id -u)" != 0 ]; then
    step "SKIP .deb install test (needs root)"
    exit 0
fi
if dpkg-query -W -f='${Status}' agentd 2>/dev/null | grep -q installed; then
    fail "an agentd package is already installed here; remove it first (dpkg -P agentd)"
fi

started=$(date +%s)
package=$(make --no-print-directory deb | tail -n 1)
[ -f "$package" ] || fail "make deb did not produce a package: $package"
step "make deb: $package, $(du -h "$package" | cut -f1) ($(($(date +%s) - started)) s)"

lint=$(lintian --fail-on error "$package" 2>&1) || fail "lintian reports errors:
$lint"
step "lintian: no error$(echo "$lint" | grep -c '^W:' | sed 's/^0$//; s/^\(.\+\)$/, \1 warning(s)/')"

installed=""
cleanup() {
    if [ -n "$installed" ]; then dpkg -P agentd >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT INT TERM

DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$package" >/tmp/agentd-deb-install.log 2>&1 || {
    cat /tmp/agentd-deb-install.log >&2
    fail "apt-get install ./$package"
}
installed=1
rm -f /tmp/agentd-deb-install.log
step "apt-get install ./$package: installed"

libraries=$(ldd /usr/bin/agentd)
outside=$(echo "$libraries" | awk '
    /not found/ { print; next }
    /=>/ { if ($3 !~ /^\/(usr\/)?lib(64)?\//) print; next }
    $1 ~ /^\// { if ($1 !~ /^\/(usr\/)?lib(64)?\//) print }')
[ -z "$outside" ] || fail "ldd /usr/bin/agentd names libraries outside the system paths:
$outside"
echo "$libraries" | grep -q swift && fail "agentd links a shared Swift runtime:
$libraries"
step "ldd /usr/bin/agentd: $(echo "$libraries" | wc -l) libraries, all in the system paths, no Swift runtime"

version=$(/usr/bin/agentd --version) || fail "agentd --version"
/usr/bin/agentd --check >/dev/null || fail "agentd --check on the installed /etc/agentd"
/usr/bin/agentd --check --config /etc/agentd/agentd.yaml \
    --agents-dir /usr/share/doc/agentd/examples/agents.d >/dev/null || fail "the example agents do not pass agentd --check"
getent passwd agentd >/dev/null || fail "the agentd user was not created"
[ -L /etc/systemd/system/multi-user.target.wants/agentd.service ] || fail "the unit was not enabled"
step "installed: agentd --version ($version), agentd --check, the agentd user, the unit enabled"

dpkg -r agentd >/dev/null || fail "dpkg -r agentd"
[ ! -e /usr/bin/agentd ] || fail "dpkg -r left /usr/bin/agentd"
[ -f /etc/agentd/agentd.yaml ] || fail "dpkg -r removed the conffile /etc/agentd/agentd.yaml"
dpkg -P agentd >/dev/null || fail "dpkg -P agentd"
installed=""
[ ! -e /etc/agentd/agentd.yaml ] || fail "dpkg -P left /etc/agentd/agentd.yaml"
for link in /etc/systemd/system/multi-user.target.wants/agentd.service /etc/systemd/system/agentd.service; do
    [ ! -e "$link" ] && [ ! -L "$link" ] || fail "dpkg -P left $link"
done
dpkg-query -W agentd >/dev/null 2>&1 && fail "dpkg still knows agentd after purge"
step "dpkg -r kept the conffile; dpkg -P removed everything"
rm -f "$package"
