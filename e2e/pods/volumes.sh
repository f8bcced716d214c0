#!/usr/bin/env bash
# Prints N static hostPath PersistentVolumes of the StorageClass `e2e-local` (and the
# class itself), their directories under DIR, for the real-pod tier: the node has no
# provisioner. `volumes.sh DIR N | kubectl apply -f -`.
set -euo pipefail
dir=$1 n=$2
cat <<YAML
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: e2e-local
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
reclaimPolicy: Retain
YAML
for i in $(seq 0 $((n - 1))); do
  # hostPath ignores fsGroup: the directory is open to the pods' user.
  mkdir -p "$dir/pv-$i"
  chmod 0777 "$dir/pv-$i"
  cat <<YAML
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: e2e-pv-$i
spec:
  capacity:
    storage: 2Gi
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: e2e-local
  hostPath:
    path: $dir/pv-$i
    type: Directory
YAML
done
