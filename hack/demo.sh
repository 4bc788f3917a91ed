#!/usr/bin/env bash
# Shows the running sandbox fleet: each cluster's nodes and how to use it.
# Later work extends the demo to install Flotilla, join the clusters and run
# an elected Deployment and Job.
set -euo pipefail
SANDBOX=${1:-.sandbox}
BIN=${2:-bin}

clusters=$(cd "$SANDBOX" && for d in */; do [[ -f $d/kubeconfig ]] && echo "${d%/}"; done)
echo
for c in $clusters; do
  echo "== $c  (KUBECONFIG=$SANDBOX/$c/kubeconfig)"
  "$BIN/kubectl" --kubeconfig "$SANDBOX/$c/kubeconfig" get nodes \
    -L topology.kubernetes.io/region -L node.kubernetes.io/instance-type
  echo
done
cat <<MSG
The fleet keeps running. Try:
  export KUBECONFIG=$SANDBOX/kubeconfig     # one context per cluster
  $BIN/kubectl --context target-1 create deployment web --image=nginx --replicas=3
  $BIN/kubectl --context target-1 get pods -o wide
  $BIN/kubectl --context target-1 logs deploy/web
Status: make sandbox-status    Stop: make demo-down
MSG
