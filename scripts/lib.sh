# Shared by scripts/serve and scripts/test: host packages and the project venv, installed when missing.
# shellcheck shell=bash

ensure_packages() {  # ensure_packages PKG...: install missing Debian/Ubuntu packages (root), else say which
  local missing=()
  for pkg in "$@"; do dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages: ${missing[*]} (sudo apt-get install -y ${missing[*]})" >&2
    return 1
  fi
  echo "installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_venv() {  # ensure_venv ROOT EXTRAS: the project installed (editable) with EXTRAS (comma-separated, e.g.
  # test,lint) in $VENV, redone when pyproject changes
  local root=$1 extras=$2
  VENV=${ZFSAPI_VENV:-$root/.venv}
  local stamp
  stamp="$VENV/.zfsapi-$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)-$extras"
  if [ ! -f "$stamp" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e "$root${extras:+[$extras]}"
    touch "$stamp"
  fi
}
