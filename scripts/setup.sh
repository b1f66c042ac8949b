#!/bin/bash
# Sets up everything the site, the examples and the tests need, and is quick when it is all there.
#   scripts/setup.sh          the Python venv (.venv) and the site's JavaScript (Mermaid, MathJax)
#   scripts/setup.sh --tests  the same, plus the Debian packages the tests drive:
#                             Chromium, Slurm, munge, Lmod, shellcheck, and fortunes (the songs and
#                             poems examples/poetry.py trains on)
# The three parts do not depend on each other, so they run side by side: apt-get (mostly waiting
# for downloads and dpkg) in the background while pip fills the venv, and the JavaScript beside them.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*"; }

apt_log=$(mktemp)
apt_pid=""
apt_packages=(chromium slurm-wlm munge lmod shellcheck fortunes)
if [[ "${1:-}" == "--tests" ]]; then
    missing=()
    for package in "${apt_packages[@]}"; do
        dpkg-query --show --showformat='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    if ((${#missing[@]})); then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            log "installing Debian packages in the background: ${missing[*]}"
            (
                export DEBIAN_FRONTEND=noninteractive
                apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"
            ) >"$apt_log" 2>&1 &
            apt_pid=$!
        else
            # The tests that need them skip and say why (and fail under CI=true).
            log "cannot install ${missing[*]} (needs root and apt-get); the browser and Slurm tests will skip"
        fi
    fi
fi

scripts/vendor_js.sh &
vendor_pid=$!

# pip's own settings as options for uv, one per line: the wheel folders, constraints and indexes
# that `pip config list` shows (from pip.conf or PIP_* variables), so that both install the same.
pip_settings_for_uv() {
    .venv/bin/python -m pip config list 2>/dev/null | python3 -c '
import shlex, sys
options = {"find-links": "--find-links", "constraint": "--constraint", "index-url": "--index-url", "extra-index-url": "--extra-index-url"}
given = []
for line in sys.stdin:
    key, _, value = line.strip().partition("=")
    option = options.get(key.rpartition(".")[2])
    for item in shlex.split(value)[0].split() if option and value else []:
        if f"{option}={item}" not in given:
            given.append(f"{option}={item}")
print("\n".join(given))'
}

# The venv is rebuilt only when requirements.txt changes. pip installs one package after another
# (a minute here); uv, itself installed by pip, unpacks them side by side (16 s here with nothing
# cached) and resolves the same versions, given pip's settings and pip's way of searching several
# indexes (every version from all of them). Where uv cannot be had, pip does it all.
# pip and uv would also compile every installed module to bytecode, one file after the other
# (1.5 minutes of CPU, a third of it for the packages' own test suites, which nothing here
# imports); compileall does the rest on every core. Like pip, it skips files that do not compile.
stamp=.venv/.requirements.sha256
wanted=$(sha256sum requirements.txt | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
    log "creating the Python environment in .venv"
    python3 -m venv .venv
    mapfile -t uv_settings < <(pip_settings_for_uv)
    if ! { .venv/bin/pip install --quiet --disable-pip-version-check uv >/dev/null 2>&1 \
        && .venv/bin/uv pip install --quiet --python .venv/bin/python --link-mode=copy \
            --index-strategy unsafe-best-match "${uv_settings[@]}" -r requirements.txt; }; then
        log "uv could not install requirements.txt; pip does it instead (about a minute)"
        .venv/bin/pip install --quiet --disable-pip-version-check --no-compile -r requirements.txt
    fi
    .venv/bin/python -m compileall -q -j 0 -x '/tests?/' .venv/lib >/dev/null || true
    echo "$wanted" > "$stamp"
fi

wait "$vendor_pid"
if [[ -n "$apt_pid" ]]; then
    if ! wait "$apt_pid"; then
        log "apt-get failed:"
        tail -n 30 "$apt_log" >&2
        rm -f "$apt_log"
        exit 1
    fi
    log "Debian packages installed"
fi
rm -f "$apt_log"
