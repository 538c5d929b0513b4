#!/usr/bin/env bash
# stop.sh stops what start.sh started, by the pids in $HARBOR_STATE/pids
# (default /tmp/kubefoundry-harbor), and keeps the data. Running it when
# nothing runs is fine. A pid whose process is no longer the program start.sh
# ran (the pid was reused) is left alone.
set -euo pipefail

STATE=${HARBOR_STATE:-/tmp/kubefoundry-harbor}
PIDS=$STATE/pids
log() { echo "harbor/stop.sh: $*" >&2; }

# alive PID: the process exists and is not a zombie waiting for its parent
# (start.sh's processes are reparented to PID 1, which may reap late).
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ -n "$state" ] && [ "$state" != Z ]
}

# stop NAME COMM SIGNAL [GRACE]: send SIGNAL to the pid in pids/NAME.pid if its
# command is COMM, wait GRACE seconds (20) for it to exit, then KILL; remove
# the pid file.
stop() {
  local name=$1 comm=$2 sig=$3 grace=${4:-20} pid i
  pid=$(cat "$PIDS/$name.pid" 2>/dev/null) || return 0
  if [ -z "$pid" ] || ! alive "$pid"; then
    rm -f "$PIDS/$name.pid"
    return 0
  fi
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$comm" ]; then
    log "$name: pid $pid is not $comm; left alone"
    rm -f "$PIDS/$name.pid"
    return 0
  fi
  kill "-$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 2; i++)); do
    alive "$pid" || break
    sleep 0.5
  done
  if alive "$pid"; then
    log "$name: still running after ${grace}s; killing pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDS/$name.pid"
  log "$name: stopped (pid $pid)"
}

[ -d "$PIDS" ] || { log "nothing started in $STATE"; exit 0; }
stop jobservice jobservice TERM
stop core core TERM
# registryctl shuts its server down on TERM but never exits (it then waits on
# context.Background().Done() in Start); nothing of it needs saving.
stop registryctl registryctl TERM 2
stop registry registry TERM
stop redis redis-server TERM
# SIGINT is PostgreSQL's fast shutdown: it ends open sessions.
stop postgres postgres INT
