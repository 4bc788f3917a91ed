#!/usr/bin/env bash
# Copies what controller-gen generates (config/) into the Helm chart, so that
# the chart's CRDs, roles and webhook rules are the generated ones, never
# hand-copied: charts/flotilla/crds/ holds the CRDs, files/ the roles and the
# webhook that the templates read with .Files.Get. Run by `make manifests`;
# `make verify` fails when the chart is behind.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
chart=charts/flotilla
rm -f "$chart"/crds/*.yaml
cp config/crd/bases/*.yaml "$chart/crds/"
mkdir -p "$chart/files/rbac"
cp config/rbac/role.yaml "$chart/files/rbac/controller-manager.yaml"
cp config/rbac/proxy-scheduler/role.yaml "$chart/files/rbac/proxy-scheduler.yaml"
cp config/rbac/candidate-scheduler/role.yaml "$chart/files/rbac/candidate-scheduler.yaml"
cp config/rbac/source-roles.yaml "$chart/files/rbac/source-roles.yaml"
cp config/webhook/manifests.yaml "$chart/files/webhook.yaml"
