#!/usr/bin/env bash
# Refresh the vendored front-end files: Swagger UI and Leaflet (served locally: the pages make no outside request).
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
