#!/usr/bin/env bash
# Emulated nodes on one machine: one Linux network namespace per node, joined by veth pairs on a bridge,
# each node's link capped by `tc tbf` in both directions. launch/convoy-mpirun --emulated N then places
# ranks in the namespaces (hostfile + launch agent), so MPI's traffic between nodes crosses the capped links.
#
#   launch/emulate-nodes.sh up N [--rate 1gbit|2.5gbit|10gbit|none] [--slots K] [--delay MS]
#   launch/emulate-nodes.sh down        removes everything `up` made (also after a failed run)
#   launch/emulate-nodes.sh status      the nodes, their caps and their links' byte counters
#
# Needs root (ip netns, tc) and iproute2. Traffic stays inside the namespaces and the bridge made here
# (10.77.0.0/24); nothing is routed outside. Latency cannot be emulated on this kernel: it has no netem
# (sch_netem), so --delay is refused with that reason unless netem loads. State lives in $STATE_DIR.
set -euo pipefail

STATE_DIR=${CONVOY_EMULATED_DIR:-/run/convoy-emulated}
BRIDGE=br-convoy
SUBNET=10.77.0
PREFIX=cvnode

die() { echo "emulate-nodes: $*" >&2; exit 1; }
need_root() { [[ $(id -u) -eq 0 ]] || die "needs root (network namespaces and tc); run it as root or with sudo"; }
need_tools() { command -v ip >/dev/null && command -v tc >/dev/null || die "needs iproute2 (ip, tc): apt-get install iproute2"; }

# tbf's bucket must hold at least one timer tick of traffic: 10 ms at the rate, and never under 64 KiB.
burst_for() {
  local rate=$1 bits
  case $rate in
    *gbit) bits=$(awk -v r="${rate%gbit}" 'BEGIN { printf "%d", r * 1e9 }') ;;
    *mbit) bits=$(awk -v r="${rate%mbit}" 'BEGIN { printf "%d", r * 1e6 }') ;;
    *) die "rate '$rate' is not N[.M]gbit or Nmbit" ;;
  esac
  awk -v b="$bits" 'BEGIN { v = b / 8 / 100; if (v < 65536) v = 65536; printf "%d", v }'
}

down() {
  need_root
  local n=0
  if [[ -f $STATE_DIR/nodes ]]; then n=$(cat "$STATE_DIR/nodes"); fi
  # The namespaces this tool names (cvnodeN), whether or not the state survived.
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${PREFIX}[0-9]+$" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^cvv[0-9]+b$" || true); do
    ip link del "$link" 2>/dev/null || true
  done
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE"
  rm -rf "$STATE_DIR"
  echo "emulate-nodes: down (removed ${n:-0} nodes' namespaces, their links and $BRIDGE)"
}

up() {
  need_root
  need_tools
  local n=${1:-} rate=1gbit slots=1 delay=""
  [[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 200)) || die "up takes a node count from 1 to 200, got '${n}'"
  shift
  while (($#)); do
    case $1 in
      --rate) rate=${2:?--rate needs a value}; shift 2 ;;
      --slots) slots=${2:?--slots needs a value}; shift 2 ;;
      --delay) delay=${2:?--delay needs milliseconds}; shift 2 ;;
      *) die "unknown option '$1' (up N [--rate R] [--slots K] [--delay MS])" ;;
    esac
  done
  [[ $slots =~ ^[0-9]+$ ]] && ((slots >= 1)) || die "--slots must be a positive count, got '$slots'"
  [[ -e $STATE_DIR || -n $(ip netns list 2>/dev/null | grep -E "^${PREFIX}[0-9]+" || true) ]] &&
    die "emulated nodes are already up ($STATE_DIR): run 'launch/emulate-nodes.sh down' first"
  if [[ -n $delay ]]; then
    modprobe sch_netem 2>/dev/null || true
    [[ -d /sys/module/sch_netem ]] ||
      die "--delay needs netem (sch_netem), which this kernel does not have: latency cannot be emulated here, only bandwidth (tc tbf)"
  fi
  local burst=""
  [[ $rate != none ]] && burst=$(burst_for "$rate")
  # On any failure from here, undo what was made.
  trap 'echo "emulate-nodes: set-up failed; removing what was made" >&2; down >/dev/null 2>&1 || true' ERR
  mkdir -p "$STATE_DIR"
  ip link add "$BRIDGE" type bridge
  ip link set "$BRIDGE" up
  ip addr add "$SUBNET.1/24" dev "$BRIDGE"
  : > "$STATE_DIR/hostfile"
  for ((i = 1; i <= n; i++)); do
    local ns=$PREFIX$i in=cvv$i out=cvv${i}b
    ip netns add "$ns"
    ip link add "$in" type veth peer name "$out"
    ip link set "$out" master "$BRIDGE"
    ip link set "$out" up
    ip link set "$in" netns "$ns"
    ip netns exec "$ns" ip addr add "$SUBNET.$((10 + i))/24" dev "$in"
    ip netns exec "$ns" ip link set "$in" up
    ip netns exec "$ns" ip link set lo up
    # Both directions: the node's egress and the bridge's egress toward it. With a delay, netem does both
    # the delay and the rate (where the kernel has it; this one does not).
    local qdisc=()
    if [[ -n $delay ]]; then
      qdisc=(netem delay "${delay}ms")
      [[ $rate != none ]] && qdisc+=(rate "$rate")
    elif [[ $rate != none ]]; then
      qdisc=(tbf rate "$rate" burst "$burst" latency 50ms)
    fi
    if ((${#qdisc[@]})); then
      ip netns exec "$ns" tc qdisc add dev "$in" root "${qdisc[@]}"
      tc qdisc add dev "$out" root "${qdisc[@]}"
    fi
    echo "$ns slots=$slots" >> "$STATE_DIR/hostfile"
  done
  trap - ERR
  echo "$n" > "$STATE_DIR/nodes"
  echo "$rate" > "$STATE_DIR/rate"
  echo "$slots" > "$STATE_DIR/slots"
  echo "$SUBNET.0/24" > "$STATE_DIR/subnet"
  local cap="links capped at $rate each way"
  [[ $rate == none ]] && cap="links uncapped"
  echo "emulate-nodes: $n nodes up (${PREFIX}1..${PREFIX}$n, $slots slots each, $cap," \
       "${delay:+$delay ms of }${delay:-no }added latency); hostfile $STATE_DIR/hostfile"
}

status() {
  [[ -f $STATE_DIR/nodes ]] || { echo "emulate-nodes: no emulated nodes are up"; return 0; }
  local n; n=$(cat "$STATE_DIR/nodes")
  echo "emulate-nodes: $n nodes, links capped at $(cat "$STATE_DIR/rate") each way, $(cat "$STATE_DIR/slots") slots each"
  for ((i = 1; i <= n; i++)); do
    local rx tx
    rx=$(cat /sys/class/net/cvv${i}b/statistics/tx_bytes 2>/dev/null || echo "?")
    tx=$(cat /sys/class/net/cvv${i}b/statistics/rx_bytes 2>/dev/null || echo "?")
    echo "  $PREFIX$i $SUBNET.$((10 + i)): sent $tx bytes, received $rx bytes"
  done
}

case ${1:-} in
  up) shift; up "$@" ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up N [--rate 1gbit|10gbit|none] [--slots K] [--delay MS] | down | status" >&2; exit 2 ;;
esac
