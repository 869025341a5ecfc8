#!/bin/sh
# Builds gatehouse-<version>-<release>.<arch>.rpm with rpmbuild from gatehouse.spec and the
# tree packaging/build.mjs staged. Env: GATEHOUSE_STAGE, GATEHOUSE_OUT, GATEHOUSE_VERSION,
# GATEHOUSE_RELEASE.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
stage=${GATEHOUSE_STAGE:?}
out=${GATEHOUSE_OUT:?}
version=${GATEHOUSE_VERSION:?}
release=${GATEHOUSE_RELEASE:-1}
command -v rpmbuild >/dev/null || { echo "rpm: rpmbuild not found (apt-get install rpm)" >&2; exit 1; }
arch=$(rpm --eval '%{_arch}')
top="$out/rpmbuild"
rm -rf "$top"
mkdir -p "$top/SOURCES" "$top/src"

# Source0: the staged tree, the units, the Node.js licence and the fluent-bit file list.
cp -a "$stage/root" "$stage/units" "$top/src/"
node_license=$(node -e 'const m=require(process.argv[1]);process.stdout.write(m.nodeLicense??"")' "$stage/meta.json")
if [ -n "$node_license" ]; then cp "$node_license" "$top/src/node-LICENSE"; else echo "Node.js licence not found on the build machine" >"$top/src/node-LICENSE"; fi
: >"$top/src/fluent-bit.files"
if [ -d "$stage/root/etc/gatehouse/fluent-bit" ]; then
	echo '%dir /etc/gatehouse/fluent-bit' >>"$top/src/fluent-bit.files"
	(cd "$stage/root" && find etc/gatehouse/fluent-bit -type f | sort | sed 's|^|%config(noreplace) /|') >>"$top/src/fluent-bit.files"
fi
tar -C "$top/src" --owner=0 --group=0 -czf "$top/SOURCES/gatehouse-$version-stage.tar.gz" .
rm -rf "$top/src"

set -- --define "_topdir $top" --define "gh_version $version" --define "gh_release $release" \
	--define "gh_arch $arch" --define "gh_date $(LC_ALL=C date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" '+%a %b %d %Y')" \
	--define '__brp_compress true' # the man page is compressed already (Debian's brp-compress needs bash)
# Debian's rpm has no systemd scriptlet macros; RHEL's systemd-rpm-macros provides them.
if [ -z "$(rpm --eval '%{?systemd_post:yes}')" ]; then
	set -- "$@" --load "$here/macros.systemd-fallback"
fi
if [ -z "$(rpm --eval '%{?_licensedir}')" ]; then set -- "$@" --define '_licensedir %{_datadir}/licenses'; fi
rpmbuild -bb --quiet "$@" --define "_rpmdir $out" --define '_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm' \
	--define '_binary_payload w19.xzdio' "$here/gatehouse.spec"
rm -rf "$top"
echo "rpm: $out/gatehouse-$version-$release.$arch.rpm"
