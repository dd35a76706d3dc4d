#!/bin/sh
# `make deb`: agentd_VERSION_ARCH.deb from the `make install` tree with PREFIX=/usr.
#
# The binaries are release builds with the Swift standard library linked statically
# (--static-swift-stdlib), stripped, so the package depends only on Debian libraries, which
# dpkg-shlibdeps computes. Added to the install tree: /etc/agentd/agentd.yaml (a conffile,
# every key commented), /etc/agentd/agents.d, the copyright file and changelog, and the
# maintainer scripts in packaging/deb. Man pages and the changelog are gzipped, as Debian
# wants. A native package: its version is BuildInfo.version, agentd's one version, with no
# Debian revision.
# Writes the package into the repository root and prints its name.
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)

version=$(sed -n 's/.*static let version = "\(.*\)".*/\1/p' Sources/AgentCore/BuildInfo.swift)
[ -n "$version" ] || { echo "build-deb: no version in BuildInfo.swift" >&2; exit 1; }
arch=$(dpkg --print-architecture)
maintainer="agentd maintainers <$(git config user.email 2>/dev/null || echo root@localhost)>"
package="agentd_${version}_${arch}.deb"

mkdir -p .build
work=$(mktemp -d "$repo/.build/deb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
root="$work/root"

unset MAKEFLAGS MAKELEVEL
make --no-print-directory install DESTDIR="$root" PREFIX=/usr INSTALL_CONFIGURATION=release \
    SWIFT_BUILD_FLAGS=--static-swift-stdlib >"$work/install.log" 2>&1 || {
    cat "$work/install.log" >&2
    exit 1
}

for binary in "$root/usr/bin/agentd" "$root/usr/bin/agentctl" "$root/usr/libexec/agentd/mistral-emulator"; do
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$binary"
done
find "$root/usr/share/man" -type f -exec gzip -9n {} +
# bash-completion sources its files: a #! line only misleads.
sed -i '1{/^#!/d}' "$root/usr/share/bash-completion/completions/agentctl"

install -d -m 0755 "$root/etc/agentd/agents.d"
install -m 0644 packaging/deb/agentd.yaml "$root/etc/agentd/agentd.yaml"
doc="$root/usr/share/doc/agentd"
install -m 0644 packaging/deb/copyright "$doc/copyright"
# The changelog's date is the last commit's, so the same commit builds the same package.
date=$(git log -1 --format=%aD 2>/dev/null || date -R)
printf 'agentd (%s) unstable; urgency=medium\n\n  * Built from the agentd repository; its git history is the changelog.\n\n -- %s  %s\n' \
    "$version" "$maintainer" "$date" | gzip -9n >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

# dpkg-shlibdeps reads debian/control from the working directory.
mkdir -p "$work/src/debian"
printf 'Source: agentd\n\nPackage: agentd\nArchitecture: any\n' >"$work/src/debian/control"
depends=$(cd "$work/src" && dpkg-shlibdeps -O -e"$root/usr/bin/agentd" -e"$root/usr/bin/agentctl" \
    -e"$root/usr/libexec/agentd/mistral-emulator" 2>"$work/shlibdeps.log" | sed -n 's/^shlibs:Depends=//p') || {
    cat "$work/shlibdeps.log" >&2
    exit 1
}
[ -n "$depends" ] || { cat "$work/shlibdeps.log" >&2; echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

install -d -m 0755 "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" -e "s|@SIZE@|$size|" \
    -e "s|@DEPENDS@|$depends|" packaging/deb/control.in >"$root/DEBIAN/control"
echo /etc/agentd/agentd.yaml >"$root/DEBIAN/conffiles"
for script in postinst prerm postrm; do install -m 0755 "packaging/deb/$script" "$root/DEBIAN/$script"; done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print0 | sort -z | xargs -0 md5sum | sed 's|  \./|  |') \
    >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

dpkg-deb --root-owner-group -Zxz --build "$root" "$package" >/dev/null
echo "$package"
