#!/usr/bin/env bash
# Deploy stack.yml on a real (single-node) Docker Swarm and check it end to end:
#
#   1. engine + swarm (starts a local dockerd as in /work/shared/notes/local-swarm.md when
#      none answers), base image (debootstrap, when no registry is reachable), image build;
#   2. `vaultmesh swarm secrets` and `vaultmesh swarm deploy` (waits until every service is
#      well and the provisioning step completed);
#   3. heartbeat round trip from containers on the attachable overlay network: one agent
#      POSTs to the gateway with the host token, one publishes over NATS with its nkey;
#      the gateway's /api/nodes (admin token) lists both, and refuses without a token;
#      `vaultmesh swarm status`: every container's healthcheck passes, every NATS server
#      routes to the others, every stream and bucket is R3 across nats-1..3 and current;
#   4. kill the fleet-state task: Swarm restarts it, and the fleet view comes back from the
#      streams; stop one NATS server: heartbeats are still stored (2 of 3), it rejoins.
#   5. remove the stack, its volumes and secrets (KEEP=1 keeps everything).
#
# Usage: scripts/swarm_test.sh      (as root; env: STACK, KEEP, BASE_IMAGE, VAULTMESH_IMAGE,
#        PYTHON: a Python with this project's dependencies and the Docker SDK, `docker`)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STACK="${STACK:-vaultmesh}"
NET="${STACK}_vaultmesh"
IMAGE="${VAULTMESH_IMAGE:-vaultmesh:local}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
WORK="${WORK:-/tmp/vaultmesh-swarm-test}"
SECRETS="$WORK/secrets"
CHECK="$WORK/check"
NATS_URLS="nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222"
export DOCKER_HOST="${DOCKER_HOST:-unix:///tmp/dockerd.sock}"
export VAULTMESH_IMAGE="$IMAGE"

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

wait_until() { # wait_until SECONDS DESCRIPTION COMMAND...
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for: $what"
    sleep 2
  done
}

ensure_engine() {
  if docker info >/dev/null 2>&1; then return; fi
  [[ "$DOCKER_HOST" == unix:///tmp/dockerd.sock ]] || fail "no engine answers at $DOCKER_HOST"
  command -v dockerd >/dev/null || fail "dockerd missing: apt-get install -y docker.io debootstrap"
  say "starting dockerd (vfs, no iptables) on $DOCKER_HOST"
  setsid dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none \
    -H "$DOCKER_HOST" --data-root /tmp/dockerdata --exec-root /tmp/dockerexec \
    --pidfile /tmp/dockerd.pid >/tmp/dockerd.log 2>&1 </dev/null &
  wait_until 60 "dockerd" docker info
}

ensure_swarm() {
  if [[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]]; then
    say "docker swarm init"
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null
  fi
}

ensure_base_image() {
  if [[ -n "${BASE_IMAGE:-}" ]]; then return; fi
  BASE_IMAGE=vaultmesh-base:local
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return; fi
  say "building $BASE_IMAGE with debootstrap (no registry here)"
  local rootfs="$WORK/rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" >"$WORK/debootstrap.log"
  # The package index is reached through a proxy whose CA is in the host's bundle.
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"
  tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

build_image() {
  say "building $IMAGE from a minimal context"
  local ctx="$WORK/context"
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$ROOT/pyproject.toml" "$ctx/"
  for f in README.md constraints.txt; do [[ -f "$ROOT/$f" ]] && cp "$ROOT/$f" "$ctx/"; done
  tar -C "$ROOT" --exclude=__pycache__ -cf - vaultmesh | tar -C "$ctx" -xf -
  docker build --network host -q -f "$ROOT/Dockerfiles/Dockerfile" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$IMAGE" "$ctx" >/dev/null
}

vm() { # the operator CLI of this checkout
  PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m vaultmesh.cli.main "$@"
}

deploy() {
  say "vaultmesh swarm secrets, vaultmesh swarm deploy"
  vm swarm secrets "$SECRETS"
  vm swarm deploy --stack "$STACK" -c "$ROOT/stack.yml" --image "$IMAGE" --timeout 600
}

all_running() { # every service at N/N and healthy, the provisioning step completed
  vm swarm status --stack "$STACK" --no-nats
}

prepare_checker() {
  rm -rf "$CHECK" && mkdir -p "$CHECK"
  cp "$SECRETS/nats_seed_agent" "$CHECK/agent.nk"
  cp "$SECRETS/nats_seed_fleet" "$CHECK/fleet.nk"
  cp "$SECRETS/nats_seed_admin" "$CHECK/admin.nk"
  cp "$SECRETS/admin_tokens" "$CHECK/admin"
  printf 'VAULTMESH_CC_URL=http://gateway:8088\nVAULTMESH_AGENT_TOKEN=%s\n' \
    "$(head -n1 "$SECRETS/agent_tokens")" >"$CHECK/agent.env"
  printf 'VAULTMESH_ALLOW_INSECURE_HTTP=true\nVAULTMESH_ROOT=/tmp\n' >>"$CHECK/agent.env"
  chown -R 10001:10001 "$CHECK" && chmod 600 "$CHECK"/*
}

in_network() { # a one-off container on the attachable overlay network
  docker run --rm --network "$NET" -v "$CHECK:/check:ro" "$@"
}

http_agent() {
  in_network -e VAULTMESH_HOSTNAME=swarm-http-agent \
    -e VAULTMESH_NODE_ID=0b5e7c1a-8d2f-4e93-a6b4-3c9d1e7f2a58 \
    "$IMAGE" vaultmesh agent run --once --env-file /check/agent.env
}

nats_agent() {
  in_network -e VAULTMESH_NATS_URL="$NATS_URLS" -e VAULTMESH_NATS_NKEY_SEED_FILE=/check/agent.nk \
    -e VAULTMESH_NATS_INBOX_PREFIX=_INBOX_agent \
    -e VAULTMESH_NODE_ID=6f1c2a52-3b8e-4c61-9d0f-5a7e2b9c1d42 \
    -e VAULTMESH_HOSTNAME=swarm-nats-agent -e VAULTMESH_ROOT=/tmp \
    "$IMAGE" vaultmesh agent run --once
}

nodes() { # prints "hostname status" per node, via the gateway with the admin token
  in_network "$IMAGE" python -c '
import httpx
token = open("/check/admin").read().split()[0]
r = httpx.get("http://gateway:8088/api/nodes", headers={"Authorization": "Bearer " + token})
r.raise_for_status()
for n in r.json()["nodes"]:
    print(n["hostname"], n["status"])
'
}

unauthenticated_is_refused() {
  in_network "$IMAGE" python -c '
import httpx
assert httpx.get("http://gateway:8088/api/nodes").status_code == 401
'
}

all_healthy() { # everything `vaultmesh swarm status` checks is well, NATS included
  vm swarm status --stack "$STACK"
}

has_both_nodes() {
  local listed
  listed="$(nodes)"
  grep -q swarm-http-agent <<<"$listed" && grep -q swarm-nats-agent <<<"$listed"
}

streams_are_r3() { # every stream and bucket on nats-1..3, every replica current
  vm swarm status --stack "$STACK" --json | "$PYTHON" -c '
import json, sys
status = json.load(sys.stdin)
for stream in status["nats"]["streams"]:
    peers = sorted(p["name"] for p in stream["peers"])
    print(stream["name"], "replicas", stream["replicas"], "on", peers)
    assert stream["replicas"] == 3 and peers == ["nats-1", "nats-2", "nats-3"], stream["name"]
assert status["ok"], status["problems"]
'
}

vault_cli() { # the operator CLI as the admin identity: vault_cli get KEY --json ...
  in_network -e VAULTMESH_NATS_URL="$NATS_URLS" -e VAULTMESH_NATS_NKEY_SEED_FILE=/check/admin.nk \
    -e VAULTMESH_NATS_INBOX_PREFIX=_INBOX_admin "$IMAGE" vaultmesh vault "$@"
}

vault_value_is() { # vault_value_is KEY VALUE
  [[ "$(vault_cli get "$1" --json 2>/dev/null | json_field value)" == "$2" ]]
}

vault_previous_key_is() { # vault_previous_key_is '{...}': status.previous_master_key, exactly
  local status
  status="$(vault_cli status --json 2>/dev/null)" || return 1
  [[ "$(json_field previous_master_key <<<"$status")" == "$1" ]]
}

json_field() { "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

redeploy_vault() { # redeploy the stack with MASTER and PREVIOUS key secrets; wait for a new vault
  local before
  before="$(task_container vault)"
  VAULTMESH_STACK_MASTER_KEY_SECRET="$1" VAULTMESH_STACK_PREVIOUS_MASTER_KEY_SECRET="$2" \
    vm swarm deploy --stack "$STACK" -c "$ROOT/stack.yml" >/dev/null
  wait_until 300 "vault redeployed with master key secret $1" new_task_running vault "$before"
}

change_master_key() {
  say "vault: change the master key by stack deploy; secrets stay readable"
  wait_until 120 "vault answers" vault_cli set swarm/check swarm-value-1
  vault_cli keygen | docker secret create vaultmesh_vault_master_key_2 - >/dev/null
  redeploy_vault vaultmesh_vault_master_key_2 vaultmesh_vault_master_key
  # The stack's vault (KV backend) has one key term: sealed again under the new key.
  wait_until 120 "vault re-sealed its key term" \
    vault_previous_key_is "{'configured': True, 'resealed_terms': 1}"
  vault_value_is swarm/check swarm-value-1 || fail "secret unreadable after the key change"
  redeploy_vault vaultmesh_vault_master_key_2 vaultmesh_vault_master_key_2
  wait_until 120 "vault runs on the new key alone" \
    vault_previous_key_is "{'configured': False, 'resealed_terms': 0}"
  vault_value_is swarm/check swarm-value-1 || fail "secret unreadable with the new key alone"
  docker secret rm vaultmesh_vault_master_key >/dev/null || fail "old key secret still in use"
  echo "master key changed; the old key's secret is removed"
}

task_container() { # the running container of service $1
  docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_$1" | head -n1
}

kill_task() { # kill service $1's running container; prints its id
  local before
  before="$(task_container "$1")"
  [[ -n "$before" ]] || fail "no running container for $1"
  say "killing the $1 task ($before)" >&2
  docker kill "$before" >/dev/null
  echo "$before"
}

watch_restart() { # wait until service $1 runs a container other than $2
  wait_until 300 "$1 restarted" new_task_running "$1" "$2"
  echo "$1 restarted by Swarm: $2 -> $(task_container "$1")"
}

no_container_of() { [[ -z "$(task_container "$1")" ]]; }

new_task_running() {
  local now
  now="$(task_container "$1")"
  [[ -n "$now" && "$now" != "$2" ]] && all_running
}

teardown() {
  if [[ "${KEEP:-0}" == 1 ]]; then say "KEEP=1: leaving the stack running"; return; fi
  say "removing the stack, its volumes and secrets"
  docker stack rm "$STACK" >/dev/null || true
  wait_until 120 "stack containers gone" no_stack_containers
  local volumes
  volumes="$(docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK")"
  [[ -z "$volumes" ]] || docker volume rm $volumes >/dev/null || true
  docker secret ls -q --filter "name=vaultmesh_" | xargs -r docker secret rm >/dev/null || true
  rm -rf "$WORK"
}

no_stack_containers() {
  [[ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ]]
}

main() {
  mkdir -p "$WORK"
  ensure_engine
  ensure_swarm
  ensure_base_image
  build_image
  deploy
  prepare_checker

  say "heartbeat round trip (HTTP with host token, NATS with nkey)"
  wait_until 120 "HTTP agent accepted" http_agent
  wait_until 120 "NATS agent accepted" nats_agent
  wait_until 180 "both nodes listed by /api/nodes" has_both_nodes
  nodes
  unauthenticated_is_refused || fail "/api/nodes answered without a token"

  say "container healthchecks"
  wait_until 180 "every container healthy" all_healthy
  all_healthy

  say "streams replicated on the three NATS servers"
  wait_until 120 "every stream R3 and current" streams_are_r3
  streams_are_r3

  local killed
  killed="$(kill_task fleet-state)"
  watch_restart fleet-state "$killed"
  wait_until 180 "fleet view rebuilt after the restart" has_both_nodes
  nodes

  change_master_key

  say "stopping nats-2: heartbeats must still be stored (2 of 3 replicas)"
  docker service scale -d "${STACK}_nats-2=0" >/dev/null
  wait_until 120 "nats-2 gone" no_container_of nats-2
  wait_until 120 "NATS agent accepted with one server down" nats_agent
  docker service scale -d "${STACK}_nats-2=1" >/dev/null
  wait_until 300 "nats-2 back" all_running
  wait_until 180 "nats-2 caught up" streams_are_r3
  streams_are_r3

  teardown
  say "PASS"
}

trap 'echo "(logs: docker service logs ${STACK}_<service>; KEEP=1 keeps the stack)" >&2' ERR
main "$@"
