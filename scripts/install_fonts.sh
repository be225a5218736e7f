#!/usr/bin/env bash
# Install Debian font packages that give the synthetic word renderer the variety of real scene
# text: sans, serif, condensed, rounded, geometric, display and monospaced faces in many weights,
# all with full Latin coverage, and one CJK font for the Chinese text lines (data=hctr_synth and
# the tests of tests/test_hctr.py, which skip without it). The renderer finds them under
# /usr/share/fonts by itself and rejects any font that cannot draw every symbol of the charset;
# without them it falls back to matplotlib's bundled fonts (DejaVu, STIX, Computer Modern).
#
#   bash scripts/install_fonts.sh            # as root (or with passwordless sudo)
#   bash scripts/install_fonts.sh --strict   # exit 1 unless every package installed (Dockerfile)
#   bash scripts/install_fonts.sh --print    # print the package list and exit
#
# Without apt-get, root or network it prints what it could not do and exits 0 (unless --strict),
# so CI on other systems goes on with the fonts it has. Packages missing from this Debian release
# are skipped and named. About 120 MB installed on Debian 12 (bookworm).
set -uo pipefail

FONT_PACKAGES=(
  fonts-dejavu-core fonts-dejavu-extra  # DejaVu Sans/Serif/Mono, condensed and light
  fonts-liberation                      # Arial, Times and Courier metrics
  fonts-noto-core                       # Noto Sans/Serif/Display in every weight and width
  fonts-freefont-ttf                    # FreeSans, FreeSerif, FreeMono
  fonts-urw-base35                      # Helvetica, Times, Avant Garde, Bookman, Palatino ... clones
  fonts-roboto                          # Roboto, Roboto Condensed, Roboto Slab
  fonts-open-sans fonts-lato fonts-cantarell fonts-cabin fonts-quicksand  # humanist, rounded
  fonts-crosextra-carlito fonts-crosextra-caladea  # Calibri and Cambria metrics
  fonts-bebas-neue fonts-league-spartan fonts-yanone-kaffeesatz  # display, signage, condensed
  fonts-comic-neue                      # informal, hand-lettered look
  fonts-ebgaramond                      # book serif (not fonts-linuxlibertine: its keycap font)
  fonts-adf-gillius fonts-adf-universalis  # Gill Sans and Univers look-alikes
  fonts-paratype                        # PT Sans, PT Serif, PT Mono
  fonts-hack                            # monospaced, for codes and plates
  fonts-wqy-microhei                    # CJK (a .ttc, which the Latin word renderer skips)
)

strict=0
for arg in "$@"; do
  case "$arg" in
    --print) printf '%s\n' "${FONT_PACKAGES[@]}"; exit 0 ;;
    --strict) strict=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "install_fonts: unknown option $arg" >&2; exit 2 ;;
  esac
done

not_installed() {
  for pkg in "${FONT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || echo "$pkg"
  done
}
give_up() {
  echo "install_fonts: $1" >&2
  echo "install_fonts: not installed: ${missing[*]}" >&2
  echo "install_fonts: the renderer goes on with the fonts it finds (matplotlib's at least)." >&2
  exit "$strict"
}

missing=("${FONT_PACKAGES[@]}")
command -v dpkg >/dev/null 2>&1 && mapfile -t missing < <(not_installed)
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install_fonts: all ${#FONT_PACKAGES[@]} font packages already installed"
  exit 0
fi
command -v apt-get >/dev/null 2>&1 || give_up "apt-get not found (not Debian/Ubuntu?)"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  give_up "needs root (or passwordless sudo) to run apt-get"
fi

count_fonts() { find /usr/share/fonts -type f \( -iname '*.ttf' -o -iname '*.otf' \) 2>/dev/null | wc -l; }
before=$(count_fonts)
# Bounded waits, so a machine without network fails in minutes instead of hanging.
apt_opts=(-o Acquire::Retries=1 -o Acquire::http::Timeout=30 -o Acquire::https::Timeout=30)
export DEBIAN_FRONTEND=noninteractive
apt_install() {
  timeout 900 "${sudo[@]}" apt-get "${apt_opts[@]}" install -y -q --no-install-recommends "$@"
}
update() { timeout 300 "${sudo[@]}" apt-get "${apt_opts[@]}" update -q; }

# Only packages this release knows; the package lists may be absent or stale, so update first
# when any package is unknown.
available() {
  for pkg in "${missing[@]}"; do
    # awk reads all its input: an early-exiting grep -q would fail the pipe under pipefail.
    candidate=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -n "$candidate" ] && [ "$candidate" != "(none)" ]; then echo "$pkg"; fi
  done
}
mapfile -t known < <(available)
if [ "${#known[@]}" -lt "${#missing[@]}" ]; then
  update || echo "install_fonts: apt-get update failed (no network?)" >&2
  mapfile -t known < <(available)
fi
[ "${#known[@]}" -gt 0 ] || give_up "apt knows none of the font packages (no package lists?)"

if ! apt_install "${known[@]}"; then
  # Stale lists give 404s: refresh once and retry.
  update || true
  apt_install "${known[@]}" || give_up "apt-get install failed"
fi

mapfile -t missing < <(not_installed)
command -v fc-cache >/dev/null 2>&1 && fc-cache -f >/dev/null 2>&1
echo "install_fonts: $(count_fonts) font files under /usr/share/fonts (was $before)"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install_fonts: not available here: ${missing[*]}" >&2
  exit "$strict"
fi
echo "install_fonts: all ${#FONT_PACKAGES[@]} font packages installed"
