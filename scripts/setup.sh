#!/usr/bin/env bash
# Shared set-up for ./isthmus, ./test and .ci/run: picks a JDK >= 21 and installs the system
# packages Isthmus needs (apt-get, as root or with passwordless sudo). Source it; it exports
# JAVA_HOME and PATH. Set ISTHMUS_SKIP_APT=1 to never call apt-get.

isthmus_java_major() {
  local java="$1/bin/java"
  [ -x "$java" ] || { echo 0; return; }
  "$java" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}' | cut -d. -f1
}

isthmus_pick_jdk() {
  if [ -n "${JAVA_HOME:-}" ] && [ "$(isthmus_java_major "$JAVA_HOME")" -ge 21 ] 2>/dev/null; then
    return 0
  fi
  local candidate best="" best_major=0 major
  for candidate in /usr/lib/jvm/*; do
    [ -d "$candidate" ] || continue
    major=$(isthmus_java_major "$candidate")
    if [ "${major:-0}" -ge 21 ] 2>/dev/null && [ "$major" -gt "$best_major" ]; then
      best="$candidate"; best_major="$major"
    fi
  done
  if [ -z "$best" ]; then
    echo "isthmus: no JDK 21 or newer found (JAVA_HOME=${JAVA_HOME:-unset}, /usr/lib/jvm has: $(ls /usr/lib/jvm 2>/dev/null | tr '\n' ' '))." >&2
    echo "isthmus: install one, e.g. Temurin 21/25 from https://adoptium.net, or 'sudo apt-get install -y openjdk-21-jdk' where your distribution has it, then set JAVA_HOME." >&2
    return 1
  fi
  export JAVA_HOME="$best"
}

isthmus_apt_install() {
  # Installs the Debian packages given that are not installed yet.
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "${ISTHMUS_SKIP_APT:-0}" = 1 ]; then
    echo "isthmus: missing packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
    return 1
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      echo "isthmus: missing packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
      return 1
    fi
  fi
  echo "isthmus: installing ${missing[*]} with apt-get" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  } || { echo "isthmus: apt-get could not install ${missing[*]}" >&2; return 1; }
}

# Packages the local federation and the tests use: nats-server (each region's bus), openssl (TLS
# test clients), iproute2 (ss: the partition test finds a region's NATS gateway links), iptables (the
# partition test cuts them), procps (pkill), git (the policy tests work in real Git repositories with
# the git CLI), curl and nghttp2-client (the proxy tests' HTTP/1.1 and HTTP/2 clients; nghttp sends
# concurrent streams on one connection).
ISTHMUS_RUNTIME_PACKAGES=(nats-server openssl iproute2 iptables procps git curl nghttp2-client)
# The tests also run a real Prometheus against the local federation, with the configuration `isthmus
# up` writes, to check every query of the Grafana dashboards in deploy/grafana.
ISTHMUS_TEST_PACKAGES=(prometheus)
# Benchmarks also drive these peers and load generators.
ISTHMUS_BENCH_PACKAGES=(haproxy wrk nghttp2-client)
