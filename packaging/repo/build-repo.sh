#!/bin/sh
# Turns the packages in OUT (default packaging/out) into signed repositories under OUT/repo:
#   apt/  dists/stable/{Release,Release.gpg,InRelease}, dists/stable/main/binary-<arch>/Packages*,
#         pool/main/g/gatehouse/*.deb, gatehouse-archive-keyring.gpg, gatehouse.sources
#   yum/  <arch>/*.rpm (signed with rpmsign), repodata/ (repomd.xml signed), RPM-GPG-KEY-gatehouse,
#         gatehouse.repo
# The signing key: $GATEHOUSE_GNUPGHOME if set (a real release key), else OUT/repo-key, made
# on first use (RSA 3072, no passphrase: fine for CI and tests, not for a public repository).
# GATEHOUSE_REPO_URL is the URL hosts will use (default file://OUT/repo).
set -eu
out=$(cd "${1:-$(dirname "$0")/../out}" && pwd)
repo="$out/repo"
url=${GATEHOUSE_REPO_URL:-file://$repo}
for t in gpg apt-ftparchive createrepo_c rpmsign; do
	command -v $t >/dev/null || { echo "repo: $t not found (apt-get install gnupg apt-utils createrepo-c rpm)" >&2; exit 1; }
done

export GNUPGHOME=${GATEHOUSE_GNUPGHOME:-$out/repo-key}
uid='Gatehouse package signing key <packages@gatehouse.invalid>'
if [ ! -d "$GNUPGHOME" ] || ! gpg --batch --list-secret-keys "$uid" >/dev/null 2>&1; then
	mkdir -p "$GNUPGHOME"
	chmod 0700 "$GNUPGHOME"
	gpg --batch --quiet --no-tty --passphrase '' --pinentry-mode loopback --quick-gen-key "$uid" rsa3072 sign 3y 2>/dev/null
fi
fpr=$(gpg --batch --with-colons --list-secret-keys "$uid" | awk -F: '$1 == "fpr" { print $10; exit }')
echo "repo: signing with $fpr"

rm -rf "$repo"
# apt
apt="$repo/apt"
arch=$(dpkg --print-architecture)
mkdir -p "$apt/pool/main/g/gatehouse" "$apt/dists/stable/main/binary-$arch"
cp "$out"/gatehouse_*.deb "$apt/pool/main/g/gatehouse/"
(cd "$apt" && apt-ftparchive packages pool >"dists/stable/main/binary-$arch/Packages")
gzip -9nk "$apt/dists/stable/main/binary-$arch/Packages"
apt-ftparchive \
	-o APT::FTPArchive::Release::Origin=Gatehouse -o APT::FTPArchive::Release::Label=Gatehouse \
	-o APT::FTPArchive::Release::Suite=stable -o APT::FTPArchive::Release::Codename=stable \
	-o APT::FTPArchive::Release::Architectures="$arch" -o APT::FTPArchive::Release::Components=main \
	-o APT::FTPArchive::Release::Description="Gatehouse API gateway" \
	release "$apt/dists/stable" >"$repo/Release.tmp"
mv "$repo/Release.tmp" "$apt/dists/stable/Release"
gpg --batch --yes --local-user "$fpr" --digest-algo SHA256 --clearsign -o "$apt/dists/stable/InRelease" "$apt/dists/stable/Release"
gpg --batch --yes --local-user "$fpr" --digest-algo SHA256 -abs -o "$apt/dists/stable/Release.gpg" "$apt/dists/stable/Release"
gpg --batch --export "$fpr" >"$apt/gatehouse-archive-keyring.gpg"
cat >"$apt/gatehouse.sources" <<EOS
Types: deb
URIs: $url/apt
Suites: stable
Components: main
Signed-By: /usr/share/keyrings/gatehouse-archive-keyring.gpg
EOS

# yum
yum="$repo/yum"
rarch=$(rpm --eval '%{_arch}')
mkdir -p "$yum/$rarch"
cp "$out"/gatehouse-*.rpm "$yum/$rarch/"
rpmsign --addsign --define "__gpg $(command -v gpg)" --define "_gpg_name $fpr" --define "_gpg_path $GNUPGHOME" \
	--define '_gpg_digest_algo sha256' "$yum/$rarch"/*.rpm >/dev/null
createrepo_c --quiet "$yum"
gpg --batch --yes --local-user "$fpr" --digest-algo SHA256 --detach-sign --armor "$yum/repodata/repomd.xml"
gpg --batch --armor --export "$fpr" >"$yum/RPM-GPG-KEY-gatehouse"
cat >"$yum/gatehouse.repo" <<EOS
[gatehouse]
name=Gatehouse API gateway
baseurl=$url/yum
enabled=1
gpgcheck=1
repo_gpgcheck=1
gpgkey=$url/yum/RPM-GPG-KEY-gatehouse
EOS
gpgconf --kill gpg-agent 2>/dev/null || true
echo "repo: $apt (apt), $yum (yum)"
