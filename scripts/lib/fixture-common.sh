# shellcheck shell=bash
# Shared helpers for scripts/fixtures.sh and scripts/qemu-dump.sh.
# Sourced, not executed. Callers run with `set -euo pipefail`.
#
# Cache layout (outside the git tree, reused across runs):
#   $CACHE/debs/                         downloaded .deb files (kernel image; -dbg is deleted after use)
#   $CACHE/kernels/<release>/root/       dpkg -x of the kernel package (boot/vmlinuz, lib/modules or usr/lib/modules)
#   $CACHE/kernels/<release>/root-xz/    a derived series' tree (kernel-selection.sh's KERNEL_DERIVED_TABLE)
#   $CACHE/kernels/<release>/vmlinux     debug vmlinux from the -dbg package (if it could be fetched)
#   $CACHE/kernels/<release>/package.txt package name and Debian version
#   $CACHE/build/<release>/              initramfs images (rebuilt on every run; cheap)
#   $CACHE/vmcores/<name>/               finished fixtures (rebuilt when the selected kernel changes)
#   $CACHE/selection/<series>.env        the kernel package each series uses (kernel-selection.sh)
#   $CACHE/apt/                          the private apt configuration that package comes through

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GUEST_DIR=$SCRIPTS_DIR/guest
CACHE=${CAPTURE_AGENT_CACHE:-$HOME/.cache/capture-agent}
# mkfs.ext4, debugfs and kexec live in sbin, which a non-root PATH may lack.
PATH=$PATH:/usr/sbin:/sbin

# The virtio stack the capture kernel needs to see /dev/vda, plus qemu_fw_cfg
# (lets the guest publish VMCOREINFO to QEMU's -device vmcoreinfo, used by qemu-dump.sh).
# A trailing '?' marks a module some kernels lack (virtio_pci_modern_dev exists from 5.14) or
# build in; ext4 and the crc32c its mount asks for are modules in Debian's generic flavour.
GUEST_MODULES="virtio_ring virtio virtio_pci_modern_dev? virtio_pci_legacy_dev? virtio_pci virtio_blk qemu_fw_cfg crc32c_generic? ext4"

log() { echo "[fixtures] $*" >&2; }
die() { echo "[fixtures] ERROR: $*" >&2; exit 1; }

# static_agent: the static capture-agent to run: CAPTURE_AGENT_STATIC_BIN when set (scripts/test
# publishes once for every test), else artifacts/static/capture-agent, published again only when a
# source is newer. One place for the scripts that boot it (e2e, the installed-system scripts, bench-auto).
static_agent() {
  if [ -n "${CAPTURE_AGENT_STATIC_BIN:-}" ]; then echo "$CAPTURE_AGENT_STATIC_BIN"; return 0; fi
  local repo=$SCRIPTS_DIR/.. bin newer="" publog
  bin=$repo/artifacts/static/capture-agent
  [ -x "$bin" ] && newer=$(find "$repo/src" "$repo/Directory.Build.props" \( -name obj -o -name bin \) -prune \
             -o -type f \( -name '*.cs' -o -name '*.csproj' -o -name '*.props' \) -newer "$bin" -print -quit)
  if [ ! -x "$bin" ] || [ -n "$newer" ]; then
    log "publishing the static NativeAOT capture-agent"
    publog=$(mktemp)
    (cd "$repo" && dotnet publish src/CaptureAgent/CaptureAgent.csproj -c Release -p:StaticBuild=true \
       --artifacts-path artifacts/static-build -o artifacts/static -v quiet -nologo > "$publog" 2>&1) \
      || { tail -n 30 "$publog" >&2; rm -f "$publog"; die "dotnet publish (static) failed"; }
    rm -f "$publog"
  fi
  echo "$(cd "$(dirname "$bin")" && pwd)/capture-agent"
}

# Run as root directly, otherwise through sudo (CI runners are usually non-root with sudo).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_update_once() {
  [ "$APT_UPDATED" = 1 ] && return 0
  log "apt-get update"
  as_root apt-get update -qq || log "apt-get update reported errors (continuing with what is available)"
  APT_UPDATED=1
}

# Install the host tools the fixture scripts need. Only missing ones are installed,
# so a second run does not touch apt at all.
ensure_host_tools() {
  local -a missing=()
  local pair cmd pkg
  for pair in qemu-system-x86_64:qemu-system-x86 kexec:kexec-tools busybox-static:busybox-static \
              cpio:cpio mkfs.ext4:e2fsprogs debugfs:e2fsprogs xz:xz-utils zstd:zstd \
              python3:python3 timeout:coreutils depmod:kmod; do
    cmd=${pair%%:*} pkg=${pair#*:}
    case $cmd in
      # busybox-static is checked by file: the dynamic "busybox" package also provides /bin/busybox.
      busybox-static) dpkg-query -W -f='${db:Status-Abbrev}' busybox-static 2>/dev/null | grep -q '^ii' && continue ;;
      *) command -v "$cmd" >/dev/null 2>&1 && continue ;;
    esac
    case " ${missing[*]} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing host packages: ${missing[*]}"
  apt_update_once
  # noninteractive: kexec-tools asks a debconf question otherwise.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed"
}

# ensure_packages CMD_OR_PATH:PACKAGE...: installs the packages whose command (or file) is missing.
ensure_packages() {
  local -a missing=()
  local pair what pkg
  for pair in "$@"; do
    what=${pair%%:*} pkg=${pair#*:}
    case $what in
      /*) [ -e "$what" ] && continue ;;
      *) command -v "$what" >/dev/null 2>&1 && continue ;;
    esac
    missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing host packages: ${missing[*]}"
  apt_update_once
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed"
}

KEXEC_BIN=""
find_kexec() {
  local c
  for c in /usr/sbin/kexec /sbin/kexec "$(command -v kexec 2>/dev/null || true)"; do
    [ -n "$c" ] && [ -x "$c" ] && { KEXEC_BIN=$c; return 0; }
  done
  die "kexec binary not found (kexec-tools)"
}

# --- kernel package selection ---------------------------------------------------------------
# The decision itself lives in kernel-selection.sh (one place); this only loads what it picked.

# shellcheck source=kernel-selection.sh
source "$SCRIPTS_DIR/lib/kernel-selection.sh"

# Sets KPKG (package), KPKG_VERSION (Debian version), KREL (uname -r), KDIR (cache dir) from the
# selection. The selection is resolved afresh (the newest of the series today) unless
# KERNEL_SELECTION=keep, which scripts/test sets after resolving once so all its fixtures agree.
select_kernel() {
  local series=$1
  if [ "${KERNEL_SELECTION:-fresh}" != keep ] || [ ! -s "$CACHE/selection/$series.env" ]; then
    resolve_series "$series"
  fi
  KPKG=$(selection_value "$series" package)
  KPKG_VERSION=$(selection_value "$series" version)
  KREL=$(selection_value "$series" release)
  KDIR=$CACHE/kernels/$KREL
  KROOT=$CACHE/$(selection_value "$series" root)
  [ "$KROOT" != "$CACHE/" ] || KROOT=$KDIR/root   # a selection written before root= existed
  KDERIVED=$(derived_row "$series")
  log "series $series -> $KPKG $KPKG_VERSION (release $KREL, tree $KROOT)"
}

# module_dir ROOT: where ROOT keeps the modules of $KREL (lib/modules, or usr/lib/modules as
# in trixie's packages).
module_dir() {
  if [ -d "$1/lib/modules/$KREL" ] || [ ! -d "$1/usr/lib/modules/$KREL" ]; then echo "$1/lib/modules/$KREL"
  else echo "$1/usr/lib/modules/$KREL"; fi
}

# run_depmod ROOT: depmod of $KREL in ROOT. This host's depmod only knows BASE/lib/modules, so a
# usr/lib/modules tree is reached through a scratch base whose lib points at ROOT/usr/lib.
run_depmod() {
  local root=$1 base rc=0
  if [ "$(module_dir "$root")" = "$root/lib/modules/$KREL" ]; then depmod -b "$root" "$KREL"; return; fi
  base=$(mktemp -d)
  ln -s "$root/usr/lib" "$base/lib"
  depmod -b "$base" "$KREL" || rc=$?
  rm -rf "$base"
  return "$rc"
}

# derive_module_tree: the tree of a derived series ($KDERIVED "series|base|compression") from
# its base's, remade when the base was unpacked again. Each module is compressed the way Kbuild
# does for that compression, and depmod indexes the compressed names.
derive_module_tree() {
  local compression tmp moddir
  [ -n "$KDERIVED" ] || return 0
  compression=${KDERIVED##*|}
  [ "$compression" = xz ] || die "derived tree: unknown module compression '$compression'"
  if [ -f "$KROOT/package.txt" ] && cmp -s "$KROOT/package.txt" "$KDIR/package.txt"; then return 0; fi
  log "deriving $KROOT: $KREL with xz-compressed modules"
  tmp=$KROOT.tmp.$$
  rm -rf "$tmp"
  cp -a "$KDIR/root" "$tmp"
  moddir=$(module_dir "$tmp")
  find "$moddir" -name '*.ko' -print0 | xargs -0 -r -n 64 xz -z --check=crc32 --lzma2=dict=1MiB -T1
  find "$moddir" -maxdepth 1 -name 'modules.*' ! -name modules.order ! -name modules.builtin ! -name modules.builtin.modinfo -delete
  run_depmod "$tmp" || die "depmod of the derived tree $tmp failed"
  grep -q '\.ko\.xz:' "$moddir/modules.dep" || die "derived tree $tmp: modules.dep names no .ko.xz module"
  cp "$KDIR/package.txt" "$tmp/package.txt"
  rm -rf "$KROOT"; mv "$tmp" "$KROOT"
}

# fixture_is_current DIR: the fixture in DIR was made from the selected package and version.
fixture_is_current() {
  local env=$1/fixture.env
  [ -s "$env" ] &&
  [ "$(sed -n 's/^kernel_package=//p' "$env")" = "$KPKG" ] &&
  [ "$(sed -n 's/^kernel_package_version=//p' "$env")" = "$KPKG_VERSION" ]
}

# The .deb apt-get download wrote for package $1 at version $2 (epoch ':' is encoded as %3a).
# Version-specific: a Debian revision bump can keep the same package (ABI) name.
deb_path() {
  local f
  for f in "$CACHE/debs/${1}_${2//:/%3a}_"*.deb; do [ -f "$f" ] && { echo "$f"; return 0; }; done
  return 1
}

# apt-get download into a directory, through the private apt configuration.
apt_download() {
  local dir=$1; shift
  ( cd "$dir" && papt_get download -qq "$@" )
}

# Download and unpack the kernel image package, and pull just the debug vmlinux out of
# the (large) -dbg package. Both steps are skipped when their result is already cached.
fetch_kernel() {
  local deb dbg tmp member
  mkdir -p "$CACHE/debs" "$KDIR"
  # A tree unpacked from another Debian revision of the same release is replaced, with its vmlinux.
  if [ -f "$KDIR/package.txt" ] && ! grep -qxF "version=$KPKG_VERSION" "$KDIR/package.txt"; then
    log "$KREL: cached tree is $(sed -n 's/^version=//p' "$KDIR/package.txt"), selected $KPKG_VERSION: unpacking again"
    rm -rf "$KDIR/root" "$KDIR/vmlinux" "$KDIR/package.txt"
  fi
  if [ ! -f "$KDIR/root/boot/vmlinuz-$KREL" ]; then
    if ! deb=$(deb_path "$KPKG" "$KPKG_VERSION"); then
      log "downloading $KPKG=$KPKG_VERSION"
      apt_download "$CACHE/debs" "$KPKG=$KPKG_VERSION" || die "apt-get download $KPKG failed"
      deb=$(deb_path "$KPKG" "$KPKG_VERSION") || die "downloaded $KPKG .deb not found in $CACHE/debs"
    fi
    # Unpack to a temp dir and rename, so a half-extracted tree is never used.
    tmp=$KDIR/root.tmp.$$
    rm -rf "$tmp"; mkdir -p "$tmp"
    dpkg -x "$deb" "$tmp"
    # depmod here, as the package's postinst would: the cached tree is then the same whichever
    # script or test touched it first (tests wanting dpkg -x's bare tree copy it without depmod's files).
    run_depmod "$tmp" || die "depmod of $KREL failed"
    rm -rf "$KDIR/root"; mv "$tmp" "$KDIR/root"
    [ -f "$KDIR/root/boot/vmlinuz-$KREL" ] || die "$deb has no boot/vmlinuz-$KREL"
  fi
  [ -f "$(module_dir "$KDIR/root")/modules.dep" ] || run_depmod "$KDIR/root" || die "depmod of $KREL failed"
  printf 'package=%s\nversion=%s\nrelease=%s\n' "$KPKG" "$KPKG_VERSION" "$KREL" > "$KDIR/package.txt"

  if [ ! -s "$KDIR/vmlinux" ] && [ "${SKIP_DBG:-0}" != 1 ]; then
    log "downloading $KPKG-dbg=$KPKG_VERSION (large; only the debug vmlinux is kept)"
    if apt_download "$CACHE/debs" "$KPKG-dbg=$KPKG_VERSION" && dbg=$(deb_path "$KPKG-dbg" "$KPKG_VERSION"); then
      member=./usr/lib/debug/boot/vmlinux-$KREL
      if dpkg-deb --fsys-tarfile "$dbg" | tar -xOf - "$member" > "$KDIR/vmlinux.tmp" \
         && [ -s "$KDIR/vmlinux.tmp" ]; then
        mv "$KDIR/vmlinux.tmp" "$KDIR/vmlinux"
        log "debug vmlinux: $KDIR/vmlinux"
      else
        rm -f "$KDIR/vmlinux.tmp"
        log "WARNING: $member not found in $dbg; continuing without debug vmlinux"
      fi
      rm -f "$dbg"   # ~1 GB; the vmlinux is all we need from it
    else
      log "WARNING: apt-get download $KPKG-dbg failed; continuing without debug vmlinux"
    fi
  fi
  derive_module_tree
}

# --- initramfs ------------------------------------------------------------------------------

# Module file for a module name inside the extracted tree (.ko, .ko.xz or .ko.zst).
# Module names use '_' but file names may use '-', so match both.
find_module_file() {
  local name=$1 alt=${1//_/-} moddir
  moddir=$(module_dir "$KROOT")
  find "$moddir" \( -name "$name.ko" -o -name "$name.ko.xz" -o -name "$name.ko.zst" \
                    -o -name "$alt.ko" -o -name "$alt.ko.xz" -o -name "$alt.ko.zst" \) -print -quit
}

module_is_builtin() {
  local f name=$1
  f=$(module_dir "$KROOT")/modules.builtin
  [ -f "$f" ] && grep -qE "/(${name}|${name//_/-})\.ko$" "$f"
}

# Copy one module (decompressed: busybox insmod only takes plain ELF) into $1/lib/modules,
# after its dependencies, appending to the load order. The extracted package has no
# modules.dep (depmod runs in postinst), so the order comes from each module's own
# "depends=" modinfo string.
MOD_ORDER=()
add_module() {
  local tree=$1 name=${2%\?} optional=no src dst deps d
  [ "$name" != "$2" ] && optional=yes
  case " ${MOD_ORDER[*]} " in *" $name "*) return 0 ;; esac
  src=$(find_module_file "$name")
  if [ -z "$src" ]; then
    if module_is_builtin "$name"; then log "module $name is built into $KREL"; return 0; fi
    if [ "$optional" = yes ]; then log "module $name is not part of $KREL: left out"; return 0; fi
    die "module $name not found in $KPKG"
  fi
  dst=$tree/lib/modules/$name.ko
  case $src in
    *.ko.xz)  xz -dc "$src" > "$dst" ;;
    *.ko.zst) zstd -qdc "$src" > "$dst" ;;
    *)        cp "$src" "$dst" ;;
  esac
  deps=$(tr '\0' '\n' < "$dst" | sed -n 's/^depends=//p' | head -n1)
  for d in ${deps//,/ }; do add_module "$tree" "$d"; done
  MOD_ORDER+=("$name")
}

# Copy a dynamic binary and the shared libraries ldd reports into a tree.
copy_with_libs() {
  local tree=$1 bin=$2 dest=$3 lib
  install -D -m 755 "$bin" "$tree$dest"
  for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    install -D -m 755 "$(readlink -f "$lib")" "$tree$lib"
  done
}

# newc cpio, root-owned, gzip (every Debian kernel can unpack gzip initramfs).
make_cpio() {
  ( cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) | gzip -6 > "$2"
}

# Builds $BUILD/capture.img and $BUILD/first.img for the selected kernel.
#   capture.img: busybox, capture /init, virtio modules.
#   first.img:   busybox, first-kernel /init, kexec + libs, modules, /boot/vmlinuz, /boot/capture.img.
build_initramfs() {
  local ctree ftree m
  BUILD=$CACHE/build/$KREL
  ctree=$BUILD/capture-tree ftree=$BUILD/first-tree
  rm -rf "$ctree" "$ftree"
  mkdir -p "$ctree"/{bin,sbin,dev,proc,sys,mnt,tmp,lib/modules}
  cp /bin/busybox "$ctree/bin/busybox"
  [ "$(file_is_static /bin/busybox)" = yes ] || die "/bin/busybox is not static (install busybox-static)"
  install -m 755 "$GUEST_DIR/capture-init" "$ctree/init"
  MOD_ORDER=()
  for m in $GUEST_MODULES; do add_module "$ctree" "$m"; done
  printf '%s\n' "${MOD_ORDER[@]}" > "$ctree/lib/modules/load-order"
  log "module load order: ${MOD_ORDER[*]}"
  make_cpio "$ctree" "$BUILD/capture.img"

  cp -a "$ctree" "$ftree"
  install -m 755 "$GUEST_DIR/first-init" "$ftree/init"
  find_kexec
  copy_with_libs "$ftree" "$KEXEC_BIN" /sbin/kexec
  install -D -m 644 "$KDIR/root/boot/vmlinuz-$KREL" "$ftree/boot/vmlinuz"
  install -D -m 644 "$BUILD/capture.img" "$ftree/boot/capture.img"
  make_cpio "$ftree" "$BUILD/first.img"
  log "initramfs: capture.img $(stat -c %s "$BUILD/capture.img") B, first.img $(stat -c %s "$BUILD/first.img") B"
}

# "yes" if the ELF has no PT_INTERP (static). Avoids depending on `file`.
file_is_static() {
  if ldd "$1" >/dev/null 2>&1; then echo no; else echo yes; fi
}

# --- fixture naming / QEMU ------------------------------------------------------------------

# QEMU runs under timeout(1), which moves itself into its own process group: a Ctrl-C on the
# script would not reach it. So QEMU is started in the background (QEMU_PID) and killed on exit.
QEMU_PID=""
SOCK_DIR=""
on_exit() {
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
    log "stopping QEMU (pid $QEMU_PID)"
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
  fi
  if [ -n "$SOCK_DIR" ]; then rm -rf "$SOCK_DIR"; fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_qemu CONSOLE_LOG QEMU_ARGS... : background QEMU with a time limit; sets QEMU_PID.
start_qemu() {
  local console=$1; shift
  timeout "$TIMEOUT" "$@" < /dev/null > "$console" 2>&1 &
  QEMU_PID=$!
}

# wait_qemu: exit status of QEMU (124 = timed out).
wait_qemu() {
  local rc=0
  wait "$QEMU_PID" || rc=$?
  QEMU_PID=""
  return "$rc"
}

# MEM (MiB, default 1024) and PAGING (4 or 5) select the guest; sets MEM, CPU_MODEL, NAME_SUFFIX.
# shellcheck disable=SC2034  # CPU_MODEL and NAME_SUFFIX are used by the calling scripts
guest_params() {
  MEM=${MEM:-1024}
  case ${PAGING:-4} in
    4) CPU_MODEL="max,la57=off"; NAME_SUFFIX="" ;;     # 4-level paging (the common case)
    5) CPU_MODEL="max";          NAME_SUFFIX="-la57" ;; # -cpu max exposes LA57 -> 5-level paging
    *) die "PAGING must be 4 or 5" ;;
  esac
  [[ $MEM =~ ^[0-9]+$ ]] || die "MEM must be MiB as an integer"
}

# 16 hex chars from the host RNG; written to the guest's kmsg so tests can find it in the dump.
random_marker() { od -An -N8 -tx1 /dev/urandom | tr -d ' \n'; }

# VMCOREINFO is in the PT_NOTE segment right after the ELF headers, so the first MiB
# of the file is enough to read it without extra tools.
vmcoreinfo_field() {
  head -c 1048576 "$1" | tr -c '[:print:]' '\n' | sed -n "s/^$2=//p" | head -n1
}

is_elf_core() {
  # ELF magic, ELFCLASS64, e_type == ET_CORE (4, little endian at offset 16)
  [ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] &&
  [ "$(od -An -j16 -N2 -tu2 "$1" | tr -d ' ')" = 4 ]
}
