#!/usr/bin/env bash
# Installs, idempotently, everything nanokube's build, tests and `make run` need on a fresh
# Debian machine: system packages through apt, Go modules through the module proxy.
set -euo pipefail

packages=(runc nftables iproute2 containernetworking-plugins docker-registry busybox-static containerd etcd-server)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: need root to install: ${missing[*]}" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# The registry package starts a system service on :5000; tests run their own on loopback.
	if command -v systemctl >/dev/null 2>&1; then systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi
	# containerd is only the benchmark's peer, started by bench/runtime on its own socket.
	if command -v systemctl >/dev/null 2>&1; then systemctl disable --now containerd >/dev/null 2>&1 || true; fi
	# etcd-server's service would take :2379; the e2e tests start their own members on free ports.
	if command -v systemctl >/dev/null 2>&1; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi
fi

cd "$(dirname "$0")/.."
go mod download
