#!/usr/bin/env bash
# Refresh the vendored front-end files: Swagger UI, Leaflet, h3-js and axe-core (tests) (served locally: the pages make no outside request).
# Run by hand when upgrading; the result is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
SWAGGER_UI_VERSION=5.35.0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@${SWAGGER_UI_VERSION}" >/dev/null && tar xzf swagger-ui-dist-*.tgz)
dest=outreach/static/vendor/swagger-ui
mkdir -p "$dest"
for f in LICENSE NOTICE swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css; do
  cp "$work/package/$f" "$dest/"
done
echo "swagger-ui-dist ${SWAGGER_UI_VERSION} from the npm registry (npm pack swagger-ui-dist@${SWAGGER_UI_VERSION}); see scripts/vendor.sh" > "$dest/VERSION"

LEAFLET_VERSION=1.9.4
(cd "$work" && rm -rf package && npm pack --silent "leaflet@${LEAFLET_VERSION}" >/dev/null && tar xzf leaflet-*.tgz)
dest=outreach/dashboard/static/vendor/leaflet
mkdir -p "$dest/images"
cp "$work/package/LICENSE" "$work/package/dist/leaflet.js" "$work/package/dist/leaflet.css" "$dest/"
cp "$work/package/dist/images/"*.png "$dest/images/"
echo "leaflet ${LEAFLET_VERSION} from the npm registry (npm pack leaflet@${LEAFLET_VERSION}); see scripts/vendor.sh" > "$dest/VERSION"

# The field app's H3 (the phone snaps its position to a hexagon itself): the UMD build,
# plain JavaScript (no WebAssembly), so the page's CSP needs no 'wasm-unsafe-eval'.
H3_VERSION=4.5.0
(cd "$work" && rm -rf package && npm pack --silent "h3-js@${H3_VERSION}" >/dev/null && tar xzf h3-js-*.tgz)
dest=outreach/fieldapp/static/vendor/h3-js
mkdir -p "$dest"
cp "$work/package/LICENSE" "$work/package/dist/h3-js.umd.js" "$dest/"
echo "h3-js ${H3_VERSION} from the npm registry (npm pack h3-js@${H3_VERSION}; dist/h3-js.umd.js); see scripts/vendor.sh" > "$dest/VERSION"

# axe-core, for the browser tests' accessibility checks only (never served).
AXE_VERSION=4.14.1
(cd "$work" && rm -rf package && npm pack --silent "axe-core@${AXE_VERSION}" >/dev/null && tar xzf axe-core-*.tgz)
dest=tests/vendor/axe-core
mkdir -p "$dest"
cp "$work/package/LICENSE" "$work/package/axe.min.js" "$dest/"
echo "axe-core ${AXE_VERSION} from the npm registry (npm pack axe-core@${AXE_VERSION}); for the browser tests only; see scripts/vendor.sh" > "$dest/VERSION"
