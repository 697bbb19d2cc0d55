# Shared by scripts/run and scripts/test: build, and local PostgreSQL and Redis.
# Sourced, not executed.

SP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SP_SERVICES=(identity accounts submission payment messaging connector)
SP_IMAGE_SERVICES=("${SP_SERVICES[@]}" gateway web)

sp_log() { printf '\033[1m[stadtportal]\033[0m %s\n' "$*" >&2; }
sp_die() { printf '[stadtportal] error: %s\n' "$*" >&2; exit 1; }

# The project version (CMakeLists.txt), used as the image tag.
sp_version() { sed -n 's/^project(stadtportal VERSION \([0-9.]*\).*/\1/p' "$SP_ROOT/CMakeLists.txt"; }

# podman with Debian's runc and limits a container host without systemd accepts.
sp_podman() {
  local cmd="$1"
  shift
  case "$cmd" in
    run | build) podman --runtime runc "$cmd" --ulimit nofile=20000:20000 --ulimit nproc=4000:4000 "$@" ;;
    *) podman --runtime runc "$cmd" "$@" ;;
  esac
}

# The newest installed PostgreSQL's binaries (known only after install-deps ran).
sp_pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && echo "$d"; done | sort -V | tail -n 1
}

# sp_build <build dir> <build type> [extra cmake args…]; $SP_BUILD_TARGET builds one target only.
sp_build() {
  local dir="$1" type="$2"
  shift 2
  export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/stadtportal-ccache}"
  # Paths inside the tree hash relative to it, so clones and worktrees share the cache.
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$SP_ROOT}"
  export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -S "$SP_ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null
  fi
  cmake --build "$dir" -j "${STADTPORTAL_BUILD_JOBS:-2}" ${SP_BUILD_TARGET:+--target "$SP_BUILD_TARGET"}
}

# Runs a command as the postgres user when we are root (initdb refuses root).
sp_as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# sp_secret: a random URL-safe token (32 characters).
sp_secret() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }

# sp_testpay_secrets <file>: the API key and webhook secret shared by testpay and the
# payment service, as an environment file.
sp_testpay_secrets() {
  (umask 077 && printf 'STADTPORTAL_TESTPAY_API_KEY=%s\nSTADTPORTAL_TESTPAY_WEBHOOK_SECRET=%s\n' \
    "$(sp_secret)" "$(sp_secret)" >"$1")
}

# sp_start_smtp <Maildir> <port> <log>: a local SMTP sink in the background ($! is its
# pid): mails land as files in <Maildir>/new/.
sp_start_smtp() {
  /usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$2" -c aiosmtpd.handlers.Mailbox "$1" >>"$3" 2>&1 &
}

# sp_wait_ready <gateway URL> <seconds> [check…]: waits for <URL>/readyz to answer 200;
# runs `check` between tries (it may give up with sp_die). Non-zero when not ready.
sp_wait_ready() {
  local url="$1" seconds="$2"
  shift 2
  for _ in $(seq 1 $((seconds * 5))); do
    curl -fsS "$url/readyz" >/dev/null 2>&1 && return 0
    if [ $# -gt 0 ]; then "$@"; fi
    sleep 0.2
  done
  curl -fsS "$url/readyz" >/dev/null
}

# sp_free_port: a TCP port nobody listens on.
sp_free_port() {
  local p
  while :; do
    # Below the kernel's ephemeral range, so no outgoing connection can take it meanwhile.
    p=$(( (RANDOM % 12000) + 20000 ))
    ss -Htln "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
  done
}

# sp_start_postgres <data dir> <port>: initialises the cluster on first use, starts it
# on 127.0.0.1 and makes sure role and database "stadtportal" exist, and each service's
# own role owning its schema (deploy/containers/postgres-roles.sql; see sp_database_url).
sp_start_postgres() {
  local dir="$1" port="$2" bin
  bin="$(sp_pg_bin)"
  [ -n "$bin" ] || sp_die "PostgreSQL is not installed (scripts/install-deps installs it)"
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; fi
  chmod 700 "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    sp_as_pg "$bin/initdb" -D "$dir" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  sp_as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c max_connections=300 -c fsync=${SP_PG_FSYNC:-on}" start >/dev/null
  local psql=("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qtA)
  if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname='stadtportal'")" != "1" ]; then
    "${psql[@]}" -c "CREATE ROLE stadtportal LOGIN"
  fi
  if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname='stadtportal'")" != "1" ]; then
    "${psql[@]}" -c "CREATE DATABASE stadtportal OWNER stadtportal"
  fi
  PGOPTIONS="-c client_min_messages=warning" "${psql[@]}" -d stadtportal \
    -f "$SP_ROOT/deploy/containers/postgres-roles.sql" >/dev/null
}

# sp_database_url <port> [service]: the local database's URL as the service's own role
# (stadtportal_<service>: its schema only), or as the owner "stadtportal" without one.
sp_database_url() {
  echo "postgresql://stadtportal${2:+_$2}@127.0.0.1:$1/stadtportal"
}

sp_stop_postgres() {
  local dir="$1"
  [ -f "$dir/postmaster.pid" ] && sp_as_pg "$(sp_pg_bin)/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
}

# sp_start_redis <dir> <port>: Redis on 127.0.0.1 with an append-only file
# (appendfsync everysec: at most one second of stream events lost on a crash).
sp_start_redis() {
  local dir="$1" port="$2"
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    --appendonly yes --appendfsync everysec --save "" >/dev/null
  local i
  for i in $(seq 1 100); do
    redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  sp_die "redis did not start (see $dir/redis.log)"
}

sp_stop_redis() {
  local port="$1"
  redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
}
