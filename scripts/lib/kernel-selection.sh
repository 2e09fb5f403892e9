# shellcheck shell=bash
# THE place that decides which Debian kernel packages the fixtures use. Sourced by
# fixture-common.sh (and so by every fixture script); `scripts/kernels` is its command line.
#
# Rule: each series follows the NEWEST installable package of its flavour and suite. Debian's
# archive keeps only the newest ABI of a series (older linux-image-6.1.0-N packages disappear
# with each point release), so a pinned version would stop resolving within weeks; instead the
# tests read whatever was picked from the selection file and must hold for any kernel of the
# series. KERNEL_PKG_<series> (dots and dashes as underscores) pins a package by hand; when the archive
# no longer offers it, the newest of the series is taken and the fallback is said.
#
# What was picked is written to $CACHE/selection/<series>.env (series, package, version,
# release, suite, flavour, picked_by): tests read it through Fixtures.Kernel(series), the
# fixture scripts compare it with each cached fixture's fixture.env and rebuild what changed.
#
# Packages come through a private apt configuration ($CACHE/apt): its own sources list (the
# mirrors this machine's apt is configured with, read at run time, plus the suites below) and
# its own state and cache directories. The host's apt sources are never edited.

# series | suite | package name pattern (extended regex) | flavour
# 5.10 comes from bullseye's security suite (its newest ABI is only there); trixie's generic 6.12
# keeps ext4, crc32c and friends as modules and its tree under usr/lib/modules.
KERNEL_SERIES_TABLE='
5.10|bullseye-security|^linux-image-5\.10\.0-[0-9]+-cloud-amd64$|cloud
6.1|bookworm|^linux-image-6\.1\.0-[0-9]+-cloud-amd64$|cloud
6.12|bookworm-security|^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64$|cloud
6.12-generic|trixie|^linux-image-6\.12\.[0-9]+\+deb13-amd64$|generic
'

# Trees no package ships as such, derived from a series above: series | base series | module
# compression. 5.10-xz is the 5.10 tree with every module xz-compressed as Kbuild does it
# (CONFIG_MODULE_COMPRESS_XZ: --check=crc32, 1 MiB dictionary) and depmod run again: a kernel
# before 5.17 cannot decompress modules itself (RHEL 8 and 9 ship such trees).
KERNEL_DERIVED_TABLE='
5.10-xz|5.10|xz
'

# derived_row SERIES: the row of a derived series ("" for a packaged one).
derived_row() { printf '%s\n' "$KERNEL_DERIVED_TABLE" | awk -F'|' -v s="$1" '$1 == s' | head -n1; }

series_row() {
  local row
  row=$(derived_row "$1" | cut -d'|' -f2)
  [ -n "$row" ] && { series_row "$row"; return; }
  row=$(printf '%s\n' "$KERNEL_SERIES_TABLE" | awk -F'|' -v s="$1" '$1 == s' | head -n1)
  [ -n "$row" ] || die "unknown kernel series '$1' (known: $(known_series | tr '\n' ' '))"
  printf '%s\n' "$row"
}

known_series() {
  printf '%s\n' "$KERNEL_SERIES_TABLE" | awk -F'|' 'NF == 4 {print $1}'
  printf '%s\n' "$KERNEL_DERIVED_TABLE" | awk -F'|' 'NF == 3 {print $1}'
}

# --- private apt configuration ------------------------------------------------------------

APT_DIR=$CACHE/apt

# The URIs this machine's apt uses for Debian's archive and its security archive, from the
# one-line and deb822 source files. Prints "archive URI" and "security URI" lines.
host_debian_mirrors() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" { uri = ""; for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/ && $i ~ /:\/\//) { uri = $i; suite = $(i + 1); break }
                       if (uri == "") next
                       print (suite ~ /-security$/ ? "security " : "archive ") uri }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'function flush() { if (uris != "" && types ~ /(^| )deb( |$)/) { n = split(uris, u, " "); for (i = 1; i <= n; i++) print (suites ~ /-security/ ? "security " : "archive ") u[i] } uris = ""; suites = ""; types = "" }
         /^[ \t]*$/ { flush(); next }
         /^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0 }
         /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
         /^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }
         END { flush() }' "$f"
  done
}

# Writes $APT_DIR/apt.conf and its sources list: every suite of the table, archive suites
# from the archive mirror, *-security suites from the security mirror.
write_private_apt_config() {
  local archive security suite suites list
  archive=$(host_debian_mirrors | awk '$1 == "archive" && $2 ~ /debian\/?$/ {print $2; exit}')
  security=$(host_debian_mirrors | awk '$1 == "security" {print $2; exit}')
  [ -n "$archive" ] || die "no Debian archive mirror in this machine's apt sources (/etc/apt/sources.list*)"
  [ -n "$security" ] || security=${archive%/debian}/debian-security
  mkdir -p "$APT_DIR/state/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/parts" "$APT_DIR/prefs"
  : > "$APT_DIR/status"
  suites=$(printf '%s\n' "$KERNEL_SERIES_TABLE" | awk -F'|' 'NF == 4 {print $2}' | sort -u)
  list=$APT_DIR/sources.list.new
  : > "$list"
  for suite in $suites; do
    case $suite in
      *-security) echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $security $suite main" >> "$list" ;;
      *) echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $archive $suite main" >> "$list" ;;
    esac
  done
  mv "$list" "$APT_DIR/sources.list"
  cat > "$APT_DIR/apt.conf" <<EOF
Dir::Etc::SourceList "$APT_DIR/sources.list";
Dir::Etc::SourceParts "$APT_DIR/parts";
Dir::Etc::Preferences "$APT_DIR/prefs/none";
Dir::Etc::PreferencesParts "$APT_DIR/prefs";
Dir::State "$APT_DIR/state";
Dir::State::status "$APT_DIR/status";
Dir::Cache "$APT_DIR/cache";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
EOF
}

# apt-get / apt-cache under the private configuration.
papt_get() { APT_CONFIG=$APT_DIR/apt.conf apt-get -o APT::Sandbox::User="$(id -un)" "$@"; }
papt_cache() { APT_CONFIG=$APT_DIR/apt.conf apt-cache "$@"; }

PRIVATE_APT_UPDATED=0
private_apt_update() {
  [ "$PRIVATE_APT_UPDATED" = 1 ] && return 0
  write_private_apt_config
  log "apt-get update (private configuration $APT_DIR)"
  papt_get update -qq || return 1
  PRIVATE_APT_UPDATED=1
}

# --- resolution ---------------------------------------------------------------------------

# Candidate version of a package under the private configuration ("" when none).
private_candidate() {
  local v
  v=$(papt_cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
  [ "$v" = "(none)" ] && v=""
  printf '%s\n' "$v"
}

# Newest package of the series that has an installable candidate.
newest_series_package() {
  local re=$1 p
  for p in $(papt_cache pkgnames linux-image- 2>/dev/null | grep -E "$re" | sort -V -r); do
    [ -n "$(private_candidate "$p")" ] && { echo "$p"; return 0; }
  done
  return 1
}

# resolve_series SERIES: decides the package afresh and writes $CACHE/selection/SERIES.env.
resolve_series() {
  local series=$1 row suite re flavour var pkg version picked=newest out
  row=$(derived_row "$series")
  if [ -n "$row" ]; then resolve_derived "$row"; return; fi
  row=$(series_row "$series")
  IFS='|' read -r _ suite re flavour <<<"$row"
  out=$CACHE/selection/$series.env
  if ! private_apt_update; then
    # An unreachable archive does not undo a decision already made: the cache holds its packages.
    [ -s "$out" ] || die "apt-get update of the fixture kernels' suites failed and series $series was never resolved"
    log "WARNING: apt-get update failed; series $series keeps its last selection ($(sed -n 's/^package=//p' "$out"))"
    return 0
  fi
  var=KERNEL_PKG_${series//[^A-Za-z0-9]/_}
  if [ -n "${!var:-}" ]; then
    pkg=${!var} picked=pin
    if [ -z "$(private_candidate "$pkg")" ]; then
      log "WARNING: pinned $pkg ($var) is no longer in the archive; taking the newest of series $series"
      pkg="" picked=pin-fallback
    fi
  fi
  [ -n "${pkg:-}" ] || pkg=$(newest_series_package "$re") \
    || die "no installable package matches series $series ($re) in $suite"
  version=$(private_candidate "$pkg")
  mkdir -p "$CACHE/selection"
  cat > "$out.tmp" <<EOF
series=$series
package=$pkg
version=$version
release=${pkg#linux-image-}
suite=$suite
flavour=$flavour
picked_by=$picked
root=kernels/${pkg#linux-image-}/root
module_compression=package
resolved=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
  mv "$out.tmp" "$out"
  log "series $series -> $pkg $version ($picked)"
}

# resolve_derived ROW: a derived series follows its base's selection (resolved first unless
# KERNEL_SELECTION=keep already holds one); its tree lives next to the base's (root=, relative
# to the cache), made by derive_module_tree in fixture-common.sh.
resolve_derived() {
  local series base compression out f
  IFS='|' read -r series base compression <<<"$1"
  f=$CACHE/selection/$base.env
  if [ "${KERNEL_SELECTION:-fresh}" != keep ] || [ ! -s "$f" ]; then resolve_series "$base"; fi
  out=$CACHE/selection/$series.env
  { sed -e "s/^series=.*/series=$series/" -e '/^root=/d' -e '/^module_compression=/d' -e '/^resolved=/d' "$f"
    echo "derived_from=$base"
    echo "root=kernels/$(sed -n 's/^release=//p' "$f")/root-$compression"
    echo "module_compression=$compression"
    echo "resolved=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } > "$out.tmp"
  mv "$out.tmp" "$out"
  log "series $series -> the tree of $base ($(sed -n 's/^package=//p' "$f")) with $compression-compressed modules"
}

# selection_value SERIES KEY: a field of the last resolution (resolving first if there is none).
selection_value() {
  local f=$CACHE/selection/$1.env
  [ -s "$f" ] || resolve_series "$1"
  sed -n "s/^$2=//p" "$f" | head -n1
}
