# shellcheck shell=bash
# Sourced by the project's scripts: gives them a Python >= 3.14.2 and the project's .venv.
#
#   dsmr_reexec "$0" "$@"   re-run the calling script under a suitable Python if this shell
#                            has none (no-op when it has one, or when already re-run);
#   dsmr_venv               create/refresh .venv from pyproject.toml's pinned dev dependency group;
#   dsmr_venv_newest        create/refresh the newest Home Assistant release's own venv
#                            (.venv-ha-<year.month>, the `ha-newest` group) and export its Python
#                            as DSMR_HA_NEWEST_PYTHON.
#
# Where a Python comes from, in order:
#   1. $DSMR_PYTHON, or python3.14 / python3 on PATH, if it is >= 3.14.2: used as it is.
#   2. $DSMR_DEVROOT_TOOL (a devroot-compatible command, e.g. ../shared/tools/devroot in CI).
#   3. Otherwise, on Debian as root: a minimal Debian testing root file system with python3.14,
#      built once with debootstrap into $DSMR_ROOT (default: .devroot/ in this checkout, about a
#      minute and ~350 MB) and entered with chroot inside a private mount namespace, so no mount
#      outlives the command and the root can be deleted like any folder.
set -euo pipefail

DSMR_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
DSMR_ROOT=${DSMR_ROOT:-$DSMR_TOP/.devroot}
DSMR_SUITE=forky
DSMR_ROOT_PACKAGES=python3.14,python3.14-venv,python3.14-dev,gcc,libc6-dev,ca-certificates,git,procps,tzdata

_say() { echo "dsmr-env: $*" >&2; }

# Print the path of a Python >= 3.14.2 on this machine, or nothing.
dsmr_find_python() {
  local cand
  for cand in ${DSMR_PYTHON:-} python3.14 python3.15 python3; do
    command -v "$cand" >/dev/null 2>&1 || continue
    if "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 14, 2))' 2>/dev/null; then
      command -v "$cand"; return 0
    fi
  done
  return 0
}

_debian_mirror() {
  local uri
  uri=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -v security | head -n1 \
        | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//; s/[[:space:]].*$//')
  echo "${uri:-http://deb.debian.org/debian}"
}

_build_root() {
  [ "$(id -u)" = 0 ] || { _say "no Python >= 3.14.2 on PATH, and building one needs root (debootstrap, chroot). Install Python 3.14 or run as root."; exit 2; }
  [ -r /etc/debian_version ] || { _say "no Python >= 3.14.2 on PATH, and the automatic build needs Debian. Install Python 3.14 (e.g. with uv or pyenv) and re-run."; exit 2; }
  local started=$SECONDS
  _say "no Python >= 3.14.2 on PATH: building a Debian $DSMR_SUITE root with python3.14 in $DSMR_ROOT"
  _say "(once; about a minute; later runs reuse it. Delete the folder to rebuild.)"
  if ! command -v debootstrap >/dev/null; then
    _say "installing debootstrap with apt-get"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  rm -rf "$DSMR_ROOT.partial"
  if ! debootstrap --variant=minbase --include="$DSMR_ROOT_PACKAGES" "$DSMR_SUITE" "$DSMR_ROOT.partial" \
        "$(_debian_mirror)" /usr/share/debootstrap/scripts/sid >"$DSMR_ROOT.log" 2>&1; then
    _say "debootstrap failed; the last lines of $DSMR_ROOT.log:"; tail -n 20 "$DSMR_ROOT.log" >&2; exit 2
  fi
  rm -rf "$DSMR_ROOT"; mv "$DSMR_ROOT.partial" "$DSMR_ROOT"
  _say "root ready in $((SECONDS - started)) s: $("$DSMR_ROOT/usr/bin/python3.14" --version 2>/dev/null || chroot "$DSMR_ROOT" python3.14 --version)"
}

# Run "$@" inside the root: a private mount namespace, the checkout bind-mounted at its own path.
_enter_root() {
  [ -x "$DSMR_ROOT/usr/bin/python3.14" ] || _build_root
  cp /etc/resolv.conf /etc/hosts "$DSMR_ROOT/etc/" 2>/dev/null || true
  [ -r /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$DSMR_ROOT/etc/ssl/certs/"
  mkdir -p "$DSMR_ROOT$DSMR_TOP"
  exec unshare --mount --propagation private /bin/sh -c '
    root=$1 top=$2; shift 2
    mount --rbind /proc "$root/proc" && mount --rbind /sys "$root/sys" && mount --rbind /dev "$root/dev" \
      && mount --bind "$top" "$root$top" || exit 2
    exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" CI="${CI:-}" TZ="${TZ:-UTC}" \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin DSMR_IN_ROOT=1 \
      DSMR_SIM_ARGS="${DSMR_SIM_ARGS:-}" DSMR_BENCH_ARGS="${DSMR_BENCH_ARGS:-}" PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-}" \
      PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 PIP_ROOT_USER_ACTION=ignore \
      SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
      /bin/sh -c "cd \"\$0\" && exec \"\$@\"" "$top" "$@"
  ' dsmr-root "$DSMR_ROOT" "$DSMR_TOP" "$@"
}

dsmr_reexec() {
  local script=$1; shift
  [ -n "${DSMR_IN_ROOT:-}" ] && return 0
  [ -n "$(dsmr_find_python)" ] && return 0
  script=$(cd "$(dirname "$script")" && pwd -P)/$(basename "$script")
  if [ -n "${DSMR_DEVROOT_TOOL:-}" ]; then
    _say "using $DSMR_DEVROOT_TOOL for Python 3.14"
    cd "$DSMR_TOP"
    exec "$DSMR_DEVROOT_TOOL" /usr/bin/env DSMR_IN_ROOT=1 CI="${CI:-}" PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-}" \
      DSMR_SIM_ARGS="${DSMR_SIM_ARGS:-}" DSMR_BENCH_ARGS="${DSMR_BENCH_ARGS:-}" bash "$script" "$@"
  fi
  _enter_root bash "$script" "$@"
}

# Create or refresh a venv with one dependency group of pyproject.toml; reinstalls only when
# pyproject.toml's [dependency-groups] or the Python changed.
_group_venv() {
  local venv=$1 group=$2 what=$3 py stamp want
  py=$(dsmr_find_python)
  [ -n "$py" ] || { _say "no Python >= 3.14.2 found (dsmr_reexec should have run first)"; exit 2; }
  want=$( { "$py" --version; sed -n '/^\[dependency-groups\]/,/^\[tool/p' "$DSMR_TOP/pyproject.toml"; } | sha256sum | cut -c1-16)
  stamp=$venv/.dsmr-stamp
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  local started=$SECONDS
  _say "installing $what into ${venv#"$DSMR_TOP"/} (about a minute)"
  [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 14, 2))' 2>/dev/null \
    || { rm -rf "$venv"; "$py" -m venv "$venv"; }
  "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
  (cd "$DSMR_TOP" && "$venv/bin/python" -m pip install -q --group "$group")
  echo "$want" > "$stamp"
  _say "${venv#"$DSMR_TOP"/} ready in $((SECONDS - started)) s"
}

dsmr_venv() {
  _group_venv "$DSMR_TOP/.venv" dev "the development environment (Home Assistant and test tools)"
}

# The newest Home Assistant release that the end-to-end suite also runs on: the version pinned in
# the `ha-newest` group names its venv (homeassistant==2026.11.0 -> .venv-ha-2026.11).
dsmr_venv_newest() {
  local version
  version=$(sed -n '/^ha-newest = \[/,/^\]/s/.*"homeassistant==\([0-9]*\.[0-9]*\)\..*/\1/p' "$DSMR_TOP/pyproject.toml")
  [ -n "$version" ] || { _say "pyproject.toml: no homeassistant==X.Y.Z in the ha-newest group"; exit 2; }
  _group_venv "$DSMR_TOP/.venv-ha-$version" ha-newest "Home Assistant $version (the newest release, for tests/e2e)"
  export DSMR_HA_NEWEST_PYTHON=$DSMR_TOP/.venv-ha-$version/bin/python
}
