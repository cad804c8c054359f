#!/usr/bin/env bash
# Install stripe-mock into the cache's bin/ from its Go module (github.com/stripe/stripe-mock),
# pinned; idempotent.
#
# stripe-mock answers the Stripe API from Stripe's own OpenAPI document, so tests and `make run`
# create real Checkout Sessions through the official library without a network or a key. It is
# built with `go install` through the Go module proxy, like helm. A cold install (download +
# build on 2 cores) took 7 s here (2 cores, empty module cache); later runs return at once when the pinned version
# is already installed.
#
# The cache is $PROPSTREAM_CACHE_DIR when set (so worktrees share one build), else .cache.
# Prints the stripe-mock binary's path on the last line of stdout.
set -euo pipefail

STRIPE_MOCK_VERSION="v0.203.0"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${PROPSTREAM_CACHE_DIR:-${root}/.cache}/bin"
binary="${bin_dir}/stripe-mock"

installed_version() {
  go version -m "$1" 2>/dev/null \
    | awk '$1 == "mod" && $2 == "github.com/stripe/stripe-mock" {print $3}'
}

if ! command -v go >/dev/null; then
  echo "error: go is not on PATH; stripe-mock ${STRIPE_MOCK_VERSION} is built with 'go install'" \
       "(install Go >= 1.22 from https://go.dev/dl or the golang-go package)" >&2
  exit 1
fi

if [[ -x "${binary}" ]] && [[ "$(installed_version "${binary}")" == "${STRIPE_MOCK_VERSION}" ]]; then
  echo "${binary}"
  exit 0
fi

mkdir -p "${bin_dir}"
echo "installing stripe-mock ${STRIPE_MOCK_VERSION} into ${bin_dir} with go install ..." >&2
started=$(date +%s)
GOBIN="${bin_dir}" GOFLAGS=-buildvcs=false \
  go install "github.com/stripe/stripe-mock@${STRIPE_MOCK_VERSION}"
echo "stripe-mock ${STRIPE_MOCK_VERSION} installed in $(( $(date +%s) - started )) s" >&2
echo "${binary}"
