#!/usr/bin/env bash
# Regenerates internal/apiserver/openapi/zz_generated.openapi.go, the OpenAPI definitions of
# every GA group-version of k8s.io/api plus the apimachinery types they use, with kube-openapi's
# openapi-gen at the version pinned in go.mod. The output is committed; the build never runs
# this script. Idempotent: running it twice gives the same file.
#
# Alpha and beta group-versions are left out on purpose, nanokube serves none of them and each
# one adds to the binary, except the packages GA types refer to, which are added automatically.
# To serve another one, add its package to the list below.
set -euo pipefail

cd "$(dirname "$0")/.."

out_pkg=github.com/nanokube/nanokube/internal/apiserver/openapi
out_dir=internal/apiserver/openapi

# GA versions only: k8s.io/api/<group>/v<N>, no alpha/beta suffix.
mapfile -t api_pkgs < <(go list k8s.io/api/... | grep -E '^k8s\.io/api/[a-z]+/v[0-9]+$' | sort)
pkgs=(
	"${api_pkgs[@]}"
	k8s.io/apimachinery/pkg/apis/meta/v1
	k8s.io/apimachinery/pkg/runtime
	k8s.io/apimachinery/pkg/version
	k8s.io/apimachinery/pkg/util/intstr
	k8s.io/apimachinery/pkg/api/resource
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/header.txt"

# A GA type may refer to a type of another package (batch/v1 Job refers to scheduling/v1alpha3
# types, for example): such a reference comes out as a quoted Go name, ref("k8s.io/...Type").
# Add those packages and generate again until every reference resolves.
# API rule violations in upstream types are upstream's business: the report goes to a scratch
# file so that they do not fail the generation.
out="$out_dir/zz_generated.openapi.go"
for _ in 1 2 3 4 5; do
	go run k8s.io/kube-openapi/cmd/openapi-gen \
		--go-header-file "$tmp/header.txt" \
		--output-dir "$out_dir" \
		--output-pkg "$out_pkg" \
		--output-file zz_generated.openapi.go \
		--report-filename "$tmp/violations.txt" \
		"${pkgs[@]}"
	mapfile -t missing < <(grep -o 'ref("[^"]*")' "$out" | sed -E 's/^ref\("(.*)\.[A-Za-z0-9_]+"\)$/\1/' | sort -u)
	if [ ${#missing[@]} -eq 0 ]; then
		gofmt -w "$out"
		exit 0
	fi
	echo "update-openapi: adding referenced packages: ${missing[*]}" >&2
	pkgs+=("${missing[@]}")
done
echo "update-openapi: references still unresolved after 5 rounds" >&2
exit 1
