#!/usr/bin/env bash
# Copies the dashboard's front-end libraries from the npm registry into the Python
# package, so that `pip install` gives a dashboard that works offline. Run it after
# changing package.json; the copies are committed, so installing stockguard needs no npm.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
target=../../src/stockguard/api/dashboard/static/vendor
mkdir -p "$target"
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css "$target/"
cp node_modules/uplot/LICENSE "$target/uPlot.LICENSE"
echo "uplot $(node -p 'require("./node_modules/uplot/package.json").version')" > "$target/VERSIONS"
