#!/usr/bin/env bash
# Runs critest against `nanokube runtime` (see mk/critest.mk): a docker-registry on loopback
# loaded with stand-ins for critest's images (go run ./hack/images -set critest), the runtime
# on a temp socket with its own bridge and pod CIDR, then critest with --registry-prefix.
# Everything it starts is stopped by PID on exit; the bridge it used is deleted.
# Env: NANOKUBE_BIN, CRITEST_BIN (required); CRITEST_SKIP, CRITEST_FOCUS; CRITEST_LOG (output).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${NANOKUBE_BIN:?}" "${CRITEST_BIN:?}"
work=$(mktemp -d /tmp/nkcritest.XXXXXX)
log=${CRITEST_LOG:-$work/critest.log}
bridge=nkcri$((RANDOM % 1000))
pids=()
cleanup() {
	# Run every step whatever the one before returned: under errexit and pipefail, a grep that
	# matched nothing used to end the trap early, leaving the bridge and the root behind.
	set +e
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	# The runtime leaves running containers behind by design; remove whatever critest left.
	if [ -d "$work/root/runc" ]; then
		for c in "$work"/root/runc/*; do [ -e "$c" ] && runc --root "$work/root/runc" delete --force "$(basename "$c")" 2>/dev/null || true; done
	fi
	# Shims and pod inits outlive the runtime by design: stop those of this run by PID.
	for p in /proc/[0-9]*; do
		if { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -q "^NANOKUBE_RUNTIME_[A-Z]*=$work/"; then
			kill -9 "${p#/proc/}" 2>/dev/null || true
		fi
	done
	grep " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
	# critest's mount-propagation specs bind-mount /tmp/test<pod id>/mnt on the host and
	# leave it mounted when a spec fails before its own cleanup: remove those this run made.
	awk '$5 ~ "^/tmp/test" {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
		grep -qxF "$m" "$work/mounts.before" || { umount -l "$m" 2>/dev/null && rm -rf "$(dirname "$m")"; } || true
	done
	# The HostIpc specs make a 1 MiB System V segment on the host (ipcmk -M 1048576) and
	# never remove it: remove the unattached ones this run made.
	awk 'NR > 1 && $4 == 1048576 && $7 == 0 {print $2}' /proc/sysvipc/shm | while read -r id; do
		grep -qxF "$id" "$work/shm.before" || ipcrm -m "$id" 2>/dev/null || true
	done
	ip link del "$bridge" 2>/dev/null || true
	rm -rf "$work/root" "$work/registry"
}
awk '$5 ~ "^/tmp/test" {print $5}' /proc/self/mountinfo >"$work/mounts.before"
awk 'NR > 1 {print $2}' /proc/sysvipc/shm >"$work/shm.before"
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/registry/data"
cat >"$work/registry/config.yml" <<CFG
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
CFG
docker-registry serve "$work/registry/config.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
go run ./hack/images -registry "127.0.0.1:$port" -set critest >/dev/null

# critest v1.37.0 pulls "$prefix/<path>" under --registry-prefix but then creates containers
# from the unprefixed names, so instead of the prefix the runtime mirrors critest's
# registries to the loopback one: names, tags and pulls are then exactly critest's. No
# fallback: an image the loopback registry lacks fails instead of reaching off the machine.
cat >"$work/registries.yaml" <<CFG
mirrors:
  registry.k8s.io:
    endpoints: ["http://127.0.0.1:$port"]
    noFallback: true
  gcr.io:
    endpoints: ["http://127.0.0.1:$port"]
    noFallback: true
  k8s.gcr.io:
    endpoints: ["http://127.0.0.1:$port"]
    noFallback: true
CFG
sock="$work/cri.sock"
"$NANOKUBE_BIN" runtime --root "$work/root" --socket "$sock" --cni-bridge "$bridge" --registry-config "$work/registries.yaml" \
	--pod-cidr "10.88.$((RANDOM % 200 + 20)).0/24" --no-masquerade >"$work/runtime.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do [ -S "$sock" ] && break; sleep 0.05; done

set +e
"$CRITEST_BIN" --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" \
	${CRITEST_REGISTRY_PREFIX:+--registry-prefix "$CRITEST_REGISTRY_PREFIX"} --ginkgo.skip "$CRITEST_SKIP" ${CRITEST_FOCUS:+--ginkgo.focus "$CRITEST_FOCUS"} \
	--ginkgo.no-color --ginkgo.timeout 40m >"$log" 2>&1
rc=$?
set -e
grep -E "^(Ran |FAIL!|SUCCESS!|PASS|FAIL)|Passed \||\[FAIL\]" "$log" | sort -u || true
echo "critest: exit $rc; full output in $log, runtime log in $work/runtime.log"
exit $rc
