#!/usr/bin/env bash
# Copy the Grafana dashboard and the Prometheus rules from deploy/ into the chart.
#
# Helm's .Files.Get cannot read outside the chart directory, so the chart
# carries byte-identical copies under helm/voxfarm/files/. Run this after
# editing either file in deploy/; `--check` only reports drift (for CI), and
# tests/helm/test_chart.py fails on drift too.
set -euo pipefail
cd "$(dirname "$0")/.."

pairs=(
  "deploy/grafana/voxfarm.json:helm/voxfarm/files/voxfarm.json"
  "deploy/prometheus/voxfarm-rules.yml:helm/voxfarm/files/voxfarm-rules.yml"
)
check=false
if [ "${1:-}" = "--check" ]; then
  check=true
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--check]" >&2
  exit 2
fi

status=0
for pair in "${pairs[@]}"; do
  src=${pair%%:*}
  dst=${pair##*:}
  if [ ! -f "$src" ]; then
    echo "missing $src" >&2
    status=1
    continue
  fi
  if cmp -s "$src" "$dst"; then
    continue
  fi
  if $check; then
    echo "$dst differs from $src; run helm/sync-files.sh" >&2
    status=1
  else
    cp "$src" "$dst"
    echo "copied $src -> $dst"
  fi
done
exit $status
