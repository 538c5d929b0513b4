#!/usr/bin/env bash
# start.sh runs the Harbor v2.4.0 that build.sh built, on 127.0.0.1 only, for
# integration tests:
#
#   PostgreSQL   127.0.0.1:$HARBOR_PG_PORT (15432), database "registry", trust auth
#   Redis        127.0.0.1:$HARBOR_REDIS_PORT (16379)
#   registry     127.0.0.1:$HARBOR_REGISTRY_PORT (15000), htpasswd auth (core's credentials)
#   registryctl  127.0.0.1:$HARBOR_REGISTRYCTL_PORT (18081), used by garbage collection
#   core         127.0.0.1:8080, admin / Harbor12345
#   jobservice   127.0.0.1:$HARBOR_JOBSERVICE_PORT (18080)
#
# Core stays on 127.0.0.1:8080, its CORE_URL: jobservice reaches the local
# Harbor there when it replicates from or into it. A registry endpoint whose
# URL is exactly CORE_URL is taken for the local Harbor and authenticated with
# Harbor's internal secret, so basic credentials fail ("the registry is
# unhealthy"); to replicate into this Harbor through an endpoint, name it
# http://localhost:8080. Core migrates the database itself at start
# (POSTGRES_MIGRATION_SCRIPTS_PATH) and sets the admin password on first start.
#
# Everything lives in $HARBOR_STATE (default /tmp/kubefoundry-harbor): data,
# generated configuration and secrets, pids/ and logs/. A second start.sh
# leaves running services alone; stop.sh stops them and keeps the data;
# remove the directory for a fresh Harbor. PostgreSQL, Redis, OpenSSL and curl
# are installed with apt-get when missing (sudo when not root); PostgreSQL
# runs as the postgres user when this runs as root.
#
# Progress goes to stderr and the environment for the tests to stdout:
#
#   eval "$(hack/harbor/start.sh)"
#   go test ./harbor/...
#   hack/harbor/stop.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$(cd ../.. && pwd)
BIN=$ROOT/bin/harbor
STATE=${HARBOR_STATE:-/tmp/kubefoundry-harbor}
PG_PORT=${HARBOR_PG_PORT:-15432}
REDIS_PORT=${HARBOR_REDIS_PORT:-16379}
REGISTRY_PORT=${HARBOR_REGISTRY_PORT:-15000}
REGISTRYCTL_PORT=${HARBOR_REGISTRYCTL_PORT:-18081}
JOBSERVICE_PORT=${HARBOR_JOBSERVICE_PORT:-18080}
CORE_URL=http://127.0.0.1:8080
ADMIN_USER=admin
ADMIN_PASSWORD=Harbor12345
TIMEOUT=${HARBOR_START_TIMEOUT:-120}

START=$(date +%s)
log() { echo "harbor/start.sh: $*" >&2; }
die() {
  log "$*"
  local f
  for f in "$STATE"/logs/*.log; do
    [ -s "$f" ] || continue
    echo "----- tail $f" >&2
    tail -n 25 "$f" >&2
  done
  log "what is running stays up for a look; hack/harbor/stop.sh stops it"
  exit 1
}

for b in core jobservice registryctl registry htpasswd; do
  [ -x "$BIN/$b" ] || { log "$BIN/$b is missing: run hack/harbor/build.sh (make harbor-build)"; exit 1; }
done

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

missing=()
pg_bindir >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
PGBIN=$(pg_bindir) || die "no PostgreSQL server binaries under /usr/lib/postgresql"

# PostgreSQL refuses to run as root.
as_pg() { "$@"; }
if [ "$(id -u)" -eq 0 ]; then
  as_pg() { runuser -u postgres -- "$@"; }
fi

mkdir -p "$STATE"/{pids,logs,secrets,core,jobservice/logs,registry/storage,registryctl,redis}
chmod 755 "$STATE"

# --- secrets: made once per state directory, as the data depends on them ----
S=$STATE/secrets
umask 077
# KEY_PATH: the AES key (16 characters) core encrypts stored passwords with.
[ -s "$S/secretkey" ] || openssl rand -hex 8 | tr -d '\n' >"$S/secretkey"
# The key core signs registry tokens with; Harbor wants PKCS#1.
[ -s "$S/private_key.pem" ] || openssl genrsa -traditional -out "$S/private_key.pem" 4096 2>/dev/null
if [ ! -s "$S/secrets.env" ]; then
  cat >"$S/secrets.env" <<EOF
CORE_SECRET=$(openssl rand -hex 8)
JOBSERVICE_SECRET=$(openssl rand -hex 8)
CSRF_KEY=$(openssl rand -hex 16)
REGISTRY_HTTP_SECRET=$(openssl rand -hex 16)
REGISTRY_CREDENTIAL_USERNAME=harbor_registry_user
REGISTRY_CREDENTIAL_PASSWORD=$(openssl rand -hex 12)
EOF
fi
umask 022
# shellcheck disable=SC1091
. "$S/secrets.env"

# --- processes ----------------------------------------------------------------

# running NAME: the pid in pids/NAME.pid is alive (a zombie is not: these
# processes outlive this script and are reaped by PID 1, maybe late).
running() {
  local pid state
  pid=$(cat "$STATE/pids/$1.pid" 2>/dev/null) && [ -n "$pid" ] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) && [ -n "$state" ] && [ "$state" != Z ]
}

# launch NAME DIR COMMAND...: run COMMAND in DIR, detached in its own session,
# with only the environment given in the array ENV; output to logs/NAME.log.
launch() {
  local name=$1 dir=$2
  shift 2
  if running "$name"; then
    log "$name: already running (pid $(cat "$STATE/pids/$name.pid"))"
    return
  fi
  (cd "$dir" && exec setsid env -i PATH="$PATH" HOME="$STATE" LANG=C.UTF-8 \
    NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost "${ENV[@]}" \
    "$@" </dev/null >>"$STATE/logs/$name.log" 2>&1) &
  echo $! >"$STATE/pids/$name.pid"
  log "$name: started (pid $!)"
}

# wait_for NAME DESCRIPTION COMMAND...: retry COMMAND until it succeeds, NAME
# dies, or the timeout passes.
wait_for() {
  local name=$1 what=$2 deadline=$(($(date +%s) + TIMEOUT))
  shift 2
  until "$@" >/dev/null 2>&1; do
    running "$name" || die "$name exited while waiting for $what"
    [ "$(date +%s)" -lt "$deadline" ] || die "timed out after ${TIMEOUT}s waiting for $what"
    sleep 0.5
  done
}

# --- PostgreSQL -----------------------------------------------------------------
PGDATA=$STATE/postgres
if running postgres; then
  log "postgres: already running (pid $(cat "$STATE/pids/postgres.pid"))"
else
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$PGDATA"
    as_pg "$PGBIN/initdb" --auth=trust --username=postgres --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" \
      >"$STATE/logs/initdb.log" 2>&1 || die "initdb failed"
  fi
  touch "$STATE/logs/postgres.log"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$STATE/logs/postgres.log"
  as_pg "$PGBIN/pg_ctl" start -w -t 60 -D "$PGDATA" -l "$STATE/logs/postgres.log" \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories='$PGDATA' -c max_connections=300" \
    >/dev/null || die "postgres did not start"
  head -n 1 "$PGDATA/postmaster.pid" >"$STATE/pids/postgres.pid"
  log "postgres: started (pid $(cat "$STATE/pids/postgres.pid"))"
fi
PSQL=("$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt)
if [ "$("${PSQL[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'registry'")" != 1 ]; then
  "${PSQL[@]}" -c "CREATE DATABASE registry" || die "cannot create database registry"
fi

# --- Redis ----------------------------------------------------------------------
# db 0: core's cache and sessions, 1: registry-related cache, 2: jobservice.
ENV=()
launch redis "$STATE/redis" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$STATE/redis" \
  --save '' --appendonly no --daemonize no
REDIS=redis://127.0.0.1:$REDIS_PORT

# --- registry -------------------------------------------------------------------
# Harbor 2.4's registry (make/photon/prepare/templates/registry): htpasswd auth
# with the credentials core and jobservice present; clients authenticate to
# core, which proxies /v2/ and issues the tokens. registryctl reads the same
# file (with distribution v2.7's parser) to find the storage.
if [ ! -s "$STATE/registry/htpasswd" ] || ! grep -q "^$REGISTRY_CREDENTIAL_USERNAME:" "$STATE/registry/htpasswd"; then
  printf %s "$REGISTRY_CREDENTIAL_PASSWORD" | "$BIN/htpasswd" "$REGISTRY_CREDENTIAL_USERNAME" >"$STATE/registry/htpasswd"
fi
cat >"$STATE/registry/config.yml" <<EOF
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $STATE/registry/storage
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
  delete:
    enabled: true
  redirect:
    disable: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
  secret: $REGISTRY_HTTP_SECRET
auth:
  htpasswd:
    realm: harbor-registry-basic-realm
    path: $STATE/registry/htpasswd
validation:
  disabled: true
EOF
ENV=(OTEL_TRACES_EXPORTER=none)
launch registry "$STATE/registry" "$BIN/registry" serve "$STATE/registry/config.yml"

cat >"$STATE/registryctl/config.yml" <<EOF
protocol: http
port: $REGISTRYCTL_PORT
log_level: info
registry_config: $STATE/registry/config.yml
EOF
ENV=(CORE_SECRET="$CORE_SECRET" JOBSERVICE_SECRET="$JOBSERVICE_SECRET")
launch registryctl "$STATE/registryctl" "$BIN/registryctl" -c "$STATE/registryctl/config.yml"

# --- core -----------------------------------------------------------------------
# As make/photon/prepare/templates/core/{app.conf,env}.jinja, with every URL
# on loopback; portal, Trivy, Notary and ChartMuseum are not run.
cat >"$STATE/core/app.conf" <<EOF
appname = Harbor
runmode = prod
enablegzip = true

[prod]
httpaddr = 127.0.0.1
httpport = 8080
EOF
COMMON_ENV=(
  CORE_SECRET="$CORE_SECRET"
  JOBSERVICE_SECRET="$JOBSERVICE_SECRET"
  CORE_URL=$CORE_URL
  REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT
  REGISTRY_CONTROLLER_URL=http://127.0.0.1:$REGISTRYCTL_PORT
  REGISTRY_CREDENTIAL_USERNAME="$REGISTRY_CREDENTIAL_USERNAME"
  REGISTRY_CREDENTIAL_PASSWORD="$REGISTRY_CREDENTIAL_PASSWORD"
  LOG_LEVEL=info
)
ENV=(
  "${COMMON_ENV[@]}"
  CONFIG_PATH="$STATE/core/app.conf"
  PORT=8080
  KEY_PATH="$S/secretkey"
  TOKEN_PRIVATE_KEY_PATH="$S/private_key.pem"
  POSTGRES_MIGRATION_SCRIPTS_PATH="$BIN/migrations/postgresql/"
  _REDIS_URL_CORE="$REDIS/0?idle_timeout_seconds=30"
  _REDIS_URL_REG="$REDIS/1?idle_timeout_seconds=30"
  SYNC_QUOTA=true
  EXT_ENDPOINT=$CORE_URL
  CORE_LOCAL_URL=$CORE_URL
  TOKEN_SERVICE_URL=$CORE_URL/service/token
  PORTAL_URL=$CORE_URL
  JOBSERVICE_URL=http://127.0.0.1:$JOBSERVICE_PORT
  DATABASE_TYPE=postgresql
  POSTGRESQL_HOST=127.0.0.1
  POSTGRESQL_PORT="$PG_PORT"
  POSTGRESQL_USERNAME=postgres
  # Any password passes trust auth, but it must not be empty: core builds
  # "password=%s dbname=%s", and lib/pq would read "dbname=registry" as the
  # password and connect to the database "postgres".
  POSTGRESQL_PASSWORD=root123
  POSTGRESQL_DATABASE=registry
  POSTGRESQL_SSLMODE=disable
  POSTGRESQL_MAX_IDLE_CONNS=50
  POSTGRESQL_MAX_OPEN_CONNS=100
  HARBOR_ADMIN_PASSWORD=$ADMIN_PASSWORD
  MAX_JOB_WORKERS=10
  WITH_NOTARY=false
  WITH_TRIVY=false
  WITH_CHARTMUSEUM=false
  REGISTRY_STORAGE_PROVIDER_NAME=filesystem
  READ_ONLY=false
  CSRF_KEY="$CSRF_KEY"
  PERMITTED_REGISTRY_TYPES_FOR_PROXY_CACHE=docker-hub,harbor,azure-acr,aws-ecr,google-gcr,quay,docker-registry
)
# Core's working directory holds views/, icons/ and migrations/, as /harbor in its image.
launch core "$BIN" "$BIN/core"
wait_for core "$CORE_URL/api/v2.0/ping" curl -fsS "$CORE_URL/api/v2.0/ping"
log "core: ping answers ($(($(date +%s) - START))s)"

# --- jobservice -----------------------------------------------------------------
cat >"$STATE/jobservice/config.yml" <<EOF
protocol: "http"
port: $JOBSERVICE_PORT
worker_pool:
  workers: 10
  backend: "redis"
  redis_pool:
    redis_url: $REDIS/2
    namespace: "harbor_job_service_namespace"
    idle_timeout_second: 3600
job_loggers:
  - name: "STD_OUTPUT"
    level: "INFO"
  - name: "FILE"
    level: "INFO"
    settings:
      base_dir: "$STATE/jobservice/logs"
    sweeper:
      duration: 1
      settings:
        work_dir: "$STATE/jobservice/logs"
loggers:
  - name: "STD_OUTPUT"
    level: "INFO"
EOF
ENV=("${COMMON_ENV[@]}" JOBSERVICE_WEBHOOK_JOB_MAX_RETRY=3)
launch jobservice "$STATE/jobservice" "$BIN/jobservice" -c "$STATE/jobservice/config.yml"
wait_for jobservice "jobservice on port $JOBSERVICE_PORT" curl -sS -o /dev/null "http://127.0.0.1:$JOBSERVICE_PORT/api/v1/stats"
wait_for core "admin login" curl -fsS -u "$ADMIN_USER:$ADMIN_PASSWORD" "$CORE_URL/api/v2.0/users/current"

log "Harbor $CORE_URL is ready in $(($(date +%s) - START))s; logs in $STATE/logs"
cat <<EOF
export KUBEFOUNDRY_HARBOR_URL=$CORE_URL
export KUBEFOUNDRY_HARBOR_USERNAME=$ADMIN_USER
export KUBEFOUNDRY_HARBOR_PASSWORD=$ADMIN_PASSWORD
export KUBEFOUNDRY_HARBOR_PSQL="$PGBIN/psql -h 127.0.0.1 -p $PG_PORT -U postgres -d registry"
EOF
