#!/usr/bin/env bash
# Install helm into .cache/bin from its Go module (helm.sh/helm/v3), pinned; idempotent.
#
# Debian has no helm package and nothing but package registries is reachable, so helm is
# built from source with `go install` through the Go module proxy. A cold install
# (download + build on 2 cores) took 229 s here; later runs reuse the module and build caches
# and return at once when the pinned version is already installed.
#
# Prints the helm binary's path on the last line of stdout.
set -euo pipefail

HELM_VERSION="v3.22.0"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${root}/.cache/bin"
helm="${bin_dir}/helm"

installed_version() {
  # `helm version` of a `go install` build lacks the release ldflags; the module does not.
  go version -m "$1" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v3" {print $3}'
}

if [[ -x "${helm}" ]] && command -v go >/dev/null && [[ "$(installed_version "${helm}")" == "${HELM_VERSION}" ]]; then
  echo "${helm}"
  exit 0
fi

if ! command -v go >/dev/null; then
  echo "error: go is not on PATH; helm ${HELM_VERSION} is built with 'go install' (Go >= 1.26)" >&2
  exit 1
fi

mkdir -p "${bin_dir}"
echo "installing helm ${HELM_VERSION} into ${bin_dir} with go install (a few minutes when cold) ..." >&2
started=$(date +%s)
GOBIN="${bin_dir}" GOFLAGS=-buildvcs=false go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
echo "helm ${HELM_VERSION} installed in $(( $(date +%s) - started )) s" >&2
echo "${helm}"
