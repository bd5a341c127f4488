#!/usr/bin/env bash
# mkdeb.sh OUTDIR: build bin/hotstandby-deb (static, stamped) and the Debian
# package OUTDIR/hotstandby_VERSION_ARCH.deb with dpkg-deb (`make deb`).
# The package version is the binary's own (`hotstandby version`), in
# Debian's spelling: v0.0.0-20261207150326-7bf3f8574aa6 becomes
# 0.0.0~20261207150326~7bf3f8574aa6 (a pseudo-version sorts before the
# release it precedes, as in Go).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
GO=${GO:-go}
arch=$(dpkg --print-architecture)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Go stamps the VCS revision only in a clone (not in a git worktree); the
# -X values fill in only what it could not (buildinfo).
ldflags="-s -w"
if rev=$(git rev-parse HEAD 2>/dev/null); then
	ts=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S)
	iso=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ)
	dirty=false
	[ -z "$(git status --porcelain 2>/dev/null)" ] || dirty=true
	pkg=github.com/hotstandby/hotstandby/buildinfo
	ldflags+=" -X $pkg.Version=v0.0.0-$ts-${rev:0:12} -X $pkg.Revision=$rev -X $pkg.Time=$iso -X $pkg.Modified=$dirty"
fi
mkdir -p bin
CGO_ENABLED=0 $GO build -buildvcs=auto -trimpath -ldflags "$ldflags" -o bin/hotstandby-deb ./cmd/hotstandby
gover=$(bin/hotstandby-deb version | awk 'NR==1 {print $2}')
case $gover in
v[0-9]*) version=${gover#v}; version=${version//-/\~} ;;
*) version="0.0.0~devel" ;;
esac

root=$work/root
install -D -m 0755 bin/hotstandby-deb "$root/usr/bin/hotstandby"
install -D -m 0644 packaging/hotstandby.service "$root/lib/systemd/system/hotstandby.service"
# /etc/hotstandby: root:hotstandby 0750 and the file hotstandby 0600, set
# by postinst (the user does not exist before it); /var/lib/hotstandby is
# made by postinst, not shipped, so that an upgrade never resets its owner.
install -d -m 0755 "$root/etc/hotstandby"
install -m 0600 packaging/hotstandby.toml "$root/etc/hotstandby/hotstandby.toml"
install -D -m 0644 /dev/null "$root/usr/share/man/man8/hotstandby.8.gz"
gzip -9n <packaging/hotstandby.8 >"$root/usr/share/man/man8/hotstandby.8.gz"
install -D -m 0644 packaging/keepalived.conf "$root/usr/share/doc/hotstandby/examples/keepalived.conf"
install -D -m 0644 packaging/hotstandby.toml "$root/usr/share/doc/hotstandby/examples/hotstandby.toml"
install -d "$root/DEBIAN"
install -m 0755 packaging/deb/postinst packaging/deb/postrm packaging/deb/prerm "$root/DEBIAN/"
echo /etc/hotstandby/hotstandby.toml >"$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: hotstandby
Version: $version
Architecture: $arch
Maintainer: hotstandby developers <hotstandby@localhost>
Installed-Size: $size
Depends: passwd
Suggests: mariadb-server (>= 1:10.11), keepalived
Section: database
Priority: optional
Homepage: https://github.com/hotstandby/hotstandby
Description: keeps a MariaDB standby hot, with lossless failover
 An agent beside a MariaDB standby: it receives the master's binlog as its
 semi-sync replica, acknowledging a transaction only once it is fsynced to a
 durable relay log, applies it to the standby, and promotes the standby
 without losing an acknowledged commit, or refuses and says why.
 .
 Ships a hardened systemd unit (Type=notify, watchdog), a commented
 /etc/hotstandby/hotstandby.toml and hotstandby(8).
CONTROL
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
mkdir -p "$out"
rm -f "$out"/hotstandby_*.deb # one package in OUTDIR: dpkg -i OUTDIR/hotstandby_*.deb
deb="$out/hotstandby_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
