#!/usr/bin/env bash
# Writes a single-layer docker-archive image (the format `ctr images import` reads) from
# local files, without Docker or a registry:
#   image.sh OUT.tar NAME:TAG ENTRYPOINT_JSON SOURCE=PATH...
# Each SOURCE file is copied to the absolute PATH inside the image, and every shared
# library `ldd` lists for it to its own path (glibc binaries run without a base image). Ownership is
# root and timestamps are fixed, so the same files give the same image digest.
set -euo pipefail
out=$1 tag=$2 entrypoint=$3
shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"
echo "nonroot:x:10001:10001::/tmp:/sbin/nologin" >"$root/etc/passwd"

add() { # add SOURCE [DEST]: a copy, stripped of debug info when it is an ELF file
  local src=$1 dest=${2:-$1}
  [[ -e $root$dest ]] && return 0
  mkdir -p "$root$(dirname "$dest")"
  if file -b "$src" 2>/dev/null | grep -q '^ELF' && objcopy --strip-debug "$src" "$root$dest" 2>/dev/null; then
    chmod --reference="$src" "$root$dest"
  else
    cp -L "$src" "$root$dest"
  fi
}
for spec in "$@"; do
  f=${spec%%=*}
  add "$(readlink -f "$f")" "${spec#*=}"
  # Shared libraries by the path the loader asks for (ldd's "=> /path" or bare "/path").
  while read -r lib; do add "$(readlink -f "$lib")" "$lib"; done < <(
    ldd "$f" 2>/dev/null | grep -o '/[^ ]*' | grep -v '^/.*:$' || true)
done

layer=$work/layer.tar
tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$root" -cf "$layer" .
diff_id=$(sha256sum "$layer" | cut -d' ' -f1)
config=$(printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":%s,"User":"10001:10001","Env":["PATH=/usr/local/bin:/usr/bin:/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$entrypoint" "$diff_id")
config_id=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
mkdir -p "$work/archive/$diff_id"
mv "$layer" "$work/archive/$diff_id/layer.tar"
printf '%s' "$config" >"$work/archive/$config_id.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' \
  "$config_id" "$tag" "$diff_id" >"$work/archive/manifest.json"
tar --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$work/archive" -cf "$out" manifest.json "$config_id.json" "$diff_id"
