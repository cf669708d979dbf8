#!/usr/bin/env bash
# Builds the test images (hack/images/main.go) and pushes them to a registry on loopback.
# With REGISTRY=host:port set, pushes there; otherwise starts Debian's docker-registry on
# 127.0.0.1:${PORT:-5000} with storage under ${REGISTRY_DIR:-/tmp/nanokube-registry}, pushes,
# and leaves it running, printing its PID (kill it by that PID when done).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${REGISTRY:-}" ]; then
	port="${PORT:-5000}"
	dir="${REGISTRY_DIR:-/tmp/nanokube-registry}"
	mkdir -p "$dir/data"
	cat >"$dir/config.yml" <<CFG
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
CFG
	docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
	pid=$!
	echo "images: registry on 127.0.0.1:$port, pid $pid"
	for _ in $(seq 1 100); do
		if curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 || \
			(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	REGISTRY="127.0.0.1:$port"
fi
go run ./hack/images -registry "$REGISTRY" -set "${IMAGE_SET:-nanokube}"
