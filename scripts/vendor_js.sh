#!/bin/bash
# Puts Mermaid and MathJax, at pinned versions, into docs/assets/vendor/ so the site serves them
# itself: a reader's browser asks no other host, and a built copy of the site works offline.
# Each package is fetched once from the npm registry with `npm pack` (the package alone, none of
# its dependencies) and checked against the integrity hash pinned here. To move to a new version,
# change the version, run this script, and copy the hash it reports into the pin.
set -euo pipefail
cd "$(dirname "$0")/.."

MERMAID_VERSION=11.12.2
MERMAID_INTEGRITY=sha512-n34QPDPEKmaeCG4WDMGy0OT6PSyxKCfy2pJgShP+Qow2KLrvWjclwbc3yXfSIf4BanqWEhQEpngWwNp/XhZt6w==
MATHJAX_VERSION=3.2.2
MATHJAX_INTEGRITY=sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==

vendor=docs/assets/vendor
cache=.cache/npm-pack

# fetch NAME VERSION INTEGRITY -> path of the verified tarball
fetch() {
    local name=$1 version=$2 integrity=$3 tarball
    tarball="$cache/$name-$version.tgz"
    if [[ ! -f "$tarball" ]]; then
        mkdir -p "$cache"
        (cd "$cache" && npm pack --silent "$name@$version" >/dev/null)
    fi
    local actual
    actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
    if [[ "$actual" != "$integrity" ]]; then
        echo "vendor_js: $tarball has integrity $actual, expected $integrity" >&2
        rm -f "$tarball"
        exit 1
    fi
    echo "$tarball"
}

if [[ ! -f "$vendor/mermaid-$MERMAID_VERSION/mermaid.min.js" ]]; then
    tarball=$(fetch mermaid "$MERMAID_VERSION" "$MERMAID_INTEGRITY")
    rm -rf "$vendor"/mermaid-*
    mkdir -p "$vendor/mermaid-$MERMAID_VERSION"
    tar -xzf "$tarball" -C "$vendor/mermaid-$MERMAID_VERSION" --strip-components=2 package/dist/mermaid.min.js
    echo "vendor_js: Mermaid $MERMAID_VERSION in $vendor"
fi

if [[ ! -f "$vendor/mathjax-$MATHJAX_VERSION/tex-chtml.js" ]]; then
    tarball=$(fetch mathjax "$MATHJAX_VERSION" "$MATHJAX_INTEGRITY")
    rm -rf "$vendor"/mathjax-*
    mkdir -p "$vendor/mathjax-$MATHJAX_VERSION"
    # The combined TeX-to-HTML component and the web fonts it loads from beside itself.
    tar -xzf "$tarball" -C "$vendor/mathjax-$MATHJAX_VERSION" --strip-components=2 \
        package/es5/tex-chtml.js package/es5/output/chtml/fonts/woff-v2
    echo "vendor_js: MathJax $MATHJAX_VERSION in $vendor"
fi
