#!/usr/bin/env bash
# Builds dropgate's Debian package with dpkg-deb from a binary already built: the package
# `cargo deb` makes. The files, dependencies and maintainer scripts come from Cargo.toml's
# [package.metadata.deb], the one place they are listed. For machines without cargo-deb (it is
# not in Debian, and `cargo install cargo-deb` costs minutes of CI), and for the package test,
# which packs the debug binary it already has.
#
#   packaging/build-deb.sh BINARY OUTDIR     prints the path of the .deb it wrote
#
# DEB_COMPRESSION (dpkg-deb -Z: xz, the default, gzip, zstd or none): the test packs a 270 MB
# debug binary, which takes xz minutes; it uses none.
#
# A production package:
#   cargo build --release -p dropgate --no-default-features
#   packaging/build-deb.sh target/release/dropgate target/debian
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 BINARY OUTDIR" >&2; exit 2; }
binary=$(realpath "$1")
mkdir -p "$2"
outdir=$(realpath "$2")
repo=$(cd "$(dirname "$0")/.." && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
tree="$stage/tree"
mkdir -p "$tree/DEBIAN"

# Cargo.toml's [package.metadata.deb] → DEBIAN/control (without Installed-Size and
# Architecture, added below), DEBIAN/conffiles, and the assets as "SOURCE<tab>DEST<tab>MODE".
python3 - "$repo/Cargo.toml" "$binary" "$tree/DEBIAN" "$stage/assets" <<'PY'
import sys, textwrap, tomllib
manifest, binary, debian, assets = sys.argv[1:]
with open(manifest, "rb") as f:
    package = tomllib.load(f)["package"]
deb = package["metadata"]["deb"]
# The long description: lines of at most 79 columns, each after one space.
long = textwrap.wrap(deb["extended-description"], 78)
description = [package["description"]] + [" " + line for line in long]
# cargo-deb's defaults: Debian revision 1, and a machine-readable copyright file.
version = f"{package['version']}-{deb.get('revision', '1')}"
with open(f"{debian}/control", "w") as out:
    out.write(f"Package: {package['name']}\nVersion: {version}\n")
    out.write(f"Maintainer: {deb['maintainer']}\nSection: {deb['section']}\n")
    out.write(f"Priority: {deb['priority']}\nDepends: {deb['depends']}\n")
    out.write("Description: " + "\n".join(description) + "\n")
with open(f"{debian}/conffiles", "w") as out:
    out.writelines(f"{c}\n" for c in deb["conf-files"])
with open(f"{debian}/../copyright", "w") as out:
    out.write("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n")
    out.write(f"Upstream-Name: {package['name']}\nCopyright: {deb['copyright']}\n")
    out.write(f"License: {package['license']}\n")
with open(assets, "w") as out:
    for source, dest, mode in deb["assets"]:
        # The binary the caller built replaces the release path cargo-deb packs.
        source = binary if source.startswith("target/") else source
        out.write(f"{source}\t{dest}\t{mode}\n")
PY
scripts=$(python3 -c 'import sys,tomllib;print(tomllib.load(open(sys.argv[1],"rb"))["package"]["metadata"]["deb"]["maintainer-scripts"])' "$repo/Cargo.toml")

while IFS=$'\t' read -r source dest mode; do
    case "$source" in /*) ;; *) source="$repo/$source" ;; esac
    install -D -m "$mode" "$source" "$tree/$dest"
done < "$stage/assets"
install -m 644 "$tree/copyright" "$tree/usr/share/doc/dropgate/copyright" && rm "$tree/copyright"
for script in preinst postinst prerm postrm; do
    [ -f "$repo/$scripts/$script" ] && install -m 755 "$repo/$scripts/$script" "$tree/DEBIAN/$script"
done

{
    echo "Architecture: $(dpkg --print-architecture)"
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "$tree" | cut -f1)"
} >> "$tree/DEBIAN/control"
version=$(sed -n 's/^Version: //p' "$tree/DEBIAN/control")
deb="$outdir/dropgate_${version}_$(dpkg --print-architecture).deb"
# Every file root's, whoever builds: the maintainer scripts give the service its own.
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$tree" "$deb" >/dev/null
echo "$deb"
