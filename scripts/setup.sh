#!/bin/bash
# Sets up everything the site, the examples and the tests need, and is quick when it is all there.
#   scripts/setup.sh          the Python venv (.venv) and the site's JavaScript (Mermaid, MathJax)
#   scripts/setup.sh --tests  the same, plus the Debian packages the tests drive:
#                             Chromium, Slurm, munge, Lmod, shellcheck
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*"; }

apt_packages=(chromium slurm-wlm munge lmod shellcheck)
if [[ "${1:-}" == "--tests" ]]; then
    missing=()
    for package in "${apt_packages[@]}"; do
        dpkg-query --show --showformat='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    if ((${#missing[@]})); then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            log "installing Debian packages: ${missing[*]}"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        else
            # The tests that need them skip and say why (and fail under CI=true).
            log "cannot install ${missing[*]} (needs root and apt-get); the browser and Slurm tests will skip"
        fi
    fi
fi

# The venv is rebuilt only when requirements.txt changes.
stamp=.venv/.requirements.sha256
wanted=$(sha256sum requirements.txt | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
    log "creating the Python environment in .venv (about a minute)"
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
    echo "$wanted" > "$stamp"
fi

scripts/vendor_js.sh
