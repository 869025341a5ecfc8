#!/bin/sh
# Builds gatehouse_<version>-<release>_<arch>.deb from the tree packaging/build.mjs staged.
# Plain dpkg-deb (no debhelper): the maintainer scripts here are dh_installsystemd's logic
# written out. Env: GATEHOUSE_STAGE, GATEHOUSE_OUT, GATEHOUSE_VERSION, GATEHOUSE_RELEASE.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
stage=${GATEHOUSE_STAGE:?}
out=${GATEHOUSE_OUT:?}
version="${GATEHOUSE_VERSION:?}-${GATEHOUSE_RELEASE:-1}"
arch=$(dpkg --print-architecture)
root="$out/deb-root"

rm -rf "$root"
mkdir -p "$root/DEBIAN"
cp -a "$stage/root/." "$root/"
# Debian 12 puts system units in /lib/systemd/system.
install -d "$root/lib/systemd/system"
for u in "$stage"/units/*; do install -m 0644 "$u" "$root/lib/systemd/system/"; done

doc="$root/usr/share/doc/gatehouse"
install -d "$doc" "$root/usr/share/lintian/overrides"
node_license=$(node -e 'const m=require(process.argv[1]);process.stdout.write(m.nodeLicense??"")' "$stage/meta.json")
{
	sed '/@NODE_LICENSE@/,$d' "$here/copyright.in"
	if [ -n "$node_license" ]; then
		sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /' "$node_license"
	else
		echo " The Node.js licence was not found on the build machine."
	fi
	sed '1,/@NODE_LICENSE@/d' "$here/copyright.in"
} >"$doc/copyright"
chmod 0644 "$doc/copyright"
{
	printf 'gatehouse (%s) stable; urgency=medium\n\n' "$version"
	printf '  * Package build of Gatehouse %s.\n\n' "$GATEHOUSE_VERSION"
	printf ' -- Gatehouse maintainers <packages@gatehouse.invalid>  %s\n' "$(date -R -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")"
} | gzip -9n >"$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"
install -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/gatehouse"

# Depends from the ELF files we ship (node, native modules): libc6/libstdc++6/libgcc-s1
# with the minimum versions their symbols need.
elves=$(find "$root" -type f \( -name '*.node' -o -path '*/usr/lib/gatehouse/bin/node' \) | sort)
tmp=$(mktemp -d)
mkdir "$tmp/debian"
printf 'Source: gatehouse\n\nPackage: gatehouse\nArchitecture: any\n' >"$tmp/debian/control"
# shellcheck disable=SC2086
shlibs=$(cd "$tmp" && dpkg-shlibdeps -O -e$(echo $elves | sed 's/ / -e/g') 2>"$tmp/err" | sed -n 's/^shlibs:Depends=//p') || { cat "$tmp/err" >&2; exit 1; }
grep -v -e "binaries to analyze should already be installed" -e "unresolvable reference" -e "similar warnings have been skipped" -e "could avoid a useless dependency" -e "probably a plugin" "$tmp/err" >&2 || true
rm -rf "$tmp"
[ -n "$shlibs" ] || { echo "deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" \
	"$here/control.in" >"$root/DEBIAN/control"
(cd "$root" && find etc -type f | sort | sed 's|^|/|') >"$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "$here/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort | xargs -d '\n' md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
find "$root" -type d -exec chmod 0755 {} +

deb="$out/gatehouse_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
rm -rf "$root"
echo "deb: $deb"
