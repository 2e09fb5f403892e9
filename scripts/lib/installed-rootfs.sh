# shellcheck shell=bash
# The installed system's root filesystem: Debian bookworm made by mmdebstrap with systemd as
# init, initramfs-tools, lvm2, mdadm, udev, e2fsprogs, xfsprogs and the fixture kernel's .deb
# installed by dpkg (its real postinst runs depmod and builds /boot/initrd.img-KVER in the chroot,
# with the lvm2 and mdadm initramfs hooks present).
# Sourced by scripts/installed-system after fixture-common.sh (log, die, CACHE).
#
# The tarball is cached under $CACHE/installed/, keyed by the package list, the kernel package
# and version and ROOTFS_FORMAT, so a second run skips mmdebstrap (~6 min on a loaded host).

# What the tarball holds besides the variant's required packages. Changing it changes the key.
ROOTFS_PACKAGES="systemd-sysv udev kmod initramfs-tools busybox zstd lvm2 mdadm e2fsprogs xfsprogs"
ROOTFS_SUITE=bookworm
# Bump when the way the tarball is made changes (hooks, options) without the lists changing.
ROOTFS_FORMAT=1

# The Debian entries of the host's apt sources for the suite (base, -updates, -security), as one
# deb822 file: the mirror is the host's own choice and is never written into the repository.
host_debian_sources() {
  local out=$1
  python3 - "$ROOTFS_SUITE" > "$out" <<'EOF'
import glob, re, sys
suite = sys.argv[1]
wanted = re.compile(r'^%s(-updates|-security)?$' % re.escape(suite))
entries = []
def add(uris, suites, comps, signed):
    suites = [s for s in suites if wanted.match(s)]
    if uris and suites and 'main' in comps:
        entries.append((uris, suites, signed))
for path in ['/etc/apt/sources.list'] + sorted(glob.glob('/etc/apt/sources.list.d/*.list')):
    try: lines = open(path).read().splitlines()
    except OSError: continue
    for line in lines:
        line = line.split('#', 1)[0].strip()
        m = re.match(r'^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$', line)
        if not m: continue
        signed = re.search(r'signed-by=(\S+?)[\s\]]', m.group(1) or '')
        add([m.group(2)], [m.group(3)], m.group(4).split(), signed.group(1) if signed else None)
for path in sorted(glob.glob('/etc/apt/sources.list.d/*.sources')):
    try: text = open(path).read()
    except OSError: continue
    for stanza in re.split(r'\n\s*\n', text):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith('#') or ':' not in line: continue
            k, v = line.split(':', 1)
            fields[k.strip().lower()] = v.strip()
        if fields.get('enabled', 'yes') == 'no' or 'deb' not in fields.get('types', '').split(): continue
        add(fields.get('uris', '').split(), fields.get('suites', '').split(),
            fields.get('components', '').split(), fields.get('signed-by'))
if not any(s == suite for _, suites, _ in entries for s in suites):
    sys.exit('the host apt sources have no "%s main" entry' % suite)
for uris, suites, signed in entries:
    print('Types: deb\nURIs: %s\nSuites: %s\nComponents: main' % (' '.join(uris), ' '.join(suites)))
    if signed: print('Signed-By: %s' % signed)
    print()
EOF
}

# rootfs_key KERNEL_DEB: the cache key of the tarball made with that kernel package.
rootfs_key() {
  local deb=$1
  printf '%s\n' "format=$ROOTFS_FORMAT" "suite=$ROOTFS_SUITE" "variant=minbase" \
    "packages=$ROOTFS_PACKAGES" "kernel=$(basename "$deb")" | sha256sum | cut -c1-16
}

# ensure_rootfs KERNEL_DEB: sets ROOTFS_TAR to the cached tarball, making it when missing.
ensure_rootfs() {
  local deb=$1 key dir tmp sources kdir
  key=$(rootfs_key "$deb")
  dir=$CACHE/installed
  ROOTFS_TAR=$dir/rootfs-$ROOTFS_SUITE-$key.tar.zst
  if [ -s "$ROOTFS_TAR" ]; then log "root filesystem (cached): $ROOTFS_TAR"; return 0; fi
  command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (apt-get install mmdebstrap)"
  mkdir -p "$dir"
  tmp=$(mktemp -d "$dir/.build.XXXXXX")
  sources=$tmp/debian.sources
  host_debian_sources "$sources" || die "no Debian $ROOTFS_SUITE source in the host's apt configuration"
  # dpkg inside the chroot opens the .deb by the path apt passes, so it must exist there too:
  # a directory under /tmp, the same path on both sides, removed from the chroot at the end.
  kdir=$(mktemp -d /tmp/capture-agent-kernel.XXXXXX)
  cp "$deb" "$kdir/"
  log "mmdebstrap $ROOTFS_SUITE (minbase + $ROOTFS_PACKAGES + $(basename "$deb")): several minutes"
  local t0=$SECONDS
  # shellcheck disable=SC2016  # "$1" in the hooks is the chroot, expanded by mmdebstrap's shell
  mmdebstrap --variant=minbase --mode=root --format=tar \
    --aptopt='APT::Install-Recommends "false"' \
    --include="${ROOTFS_PACKAGES// /,}" --include="$kdir/$(basename "$deb")" \
    --setup-hook="mkdir -p \"\$1$kdir\" && cp \"$kdir/$(basename "$deb")\" \"\$1$kdir/\"" \
    --customize-hook="rm -rf \"\$1$kdir\"" \
    --customize-hook='test -e "$1"/boot/initrd.img-* || { echo "the kernel postinst made no initrd" >&2; exit 1; }' \
    "$ROOTFS_SUITE" "$tmp/rootfs.tar.zst" "$sources" > "$tmp/mmdebstrap.log" 2>&1 \
    || { tail -n 40 "$tmp/mmdebstrap.log" >&2; rm -rf "$tmp" "$kdir"; die "mmdebstrap failed (log above)"; }
  mv "$tmp/rootfs.tar.zst" "$ROOTFS_TAR"
  rm -rf "$tmp" "$kdir"
  # Tarballs of other keys (an older kernel or package list) are not used again: ~150 MB each.
  find "$dir" -maxdepth 1 -name "rootfs-$ROOTFS_SUITE-*.tar.zst" ! -name "$(basename "$ROOTFS_TAR")" -delete
  log "root filesystem made in $(( SECONDS - t0 )) s: $ROOTFS_TAR ($(du -h "$ROOTFS_TAR" | cut -f1))"
}

# unpack_rootfs TARBALL DIR: the cached root filesystem into DIR (emptied first). Judged by tar's
# status alone: tar stops reading at the archive's end-of-archive blocks, and when zstd has not yet
# written the zero padding after them into the pipe it gets EPIPE and exits 1 ("Broken pipe").
# Under pipefail that failed two CI runs' first layout; a damaged stream still fails tar itself
# (unexpected end of archive).
unpack_rootfs() {
  local tarball=$1 dir=$2 status
  rm -rf "$dir"; mkdir -p "$dir"
  zstd -dc "$tarball" 2>/dev/null | tar -C "$dir" --numeric-owner --xattrs --xattrs-include='*' -xpf -
  status=("${PIPESTATUS[@]}")
  [ "${status[1]}" = 0 ] && return 0
  log "unpacking $tarball: tar exit ${status[1]}, zstd exit ${status[0]}"
  return 1
}
