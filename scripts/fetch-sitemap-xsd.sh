#!/usr/bin/env bash
# Fetches the official sitemaps.org urlset schema (sitemap.xsd) from npm's pinned `sitemap`
# package into .tools/xsd/ for the schema tests. Set-up time only: the tests never go online.
set -euo pipefail
cd "$(dirname "$0")/.."
package="sitemap@9.0.1"
# The tarball's SHA-1 as the npm registry publishes it (`npm view sitemap@9.0.1 dist.shasum`).
shasum="33e9b09e2177eb896e05b16da4219f53919842f6"
destination=".tools/xsd"
if [ -f "$destination/sitemap.xsd" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "fetch-sitemap-xsd: npm is not installed, so the sitemap schema tests will skip" >&2
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package" >/dev/null)
tarballs=("$work"/sitemap-*.tgz)
echo "$shasum  ${tarballs[0]}" | sha1sum --check --quiet -
tar -xzf "${tarballs[0]}" -C "$work" package/schema/sitemap.xsd
mkdir -p "$destination"
mv "$work/package/schema/sitemap.xsd" "$destination/sitemap.xsd"
echo "fetch-sitemap-xsd: $destination/sitemap.xsd from $package"
