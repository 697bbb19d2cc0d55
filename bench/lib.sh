# shellcheck shell=bash
# Shared by the bench/ scripts: tools, nginx as the static reference, wrk and pgbench
# runs reduced to figures, "my submissions" at 1,000,000 rows, and resident memory.
# Sourced, not executed; every figure function refuses (sp_die) a run with errors.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"

# bench_install <command=package>…: installs the Debian packages of missing commands.
bench_install() {
  local pair cmd pkg missing=()
  for pair in "$@"; do
    cmd="${pair%%=*}" pkg="${pair#*=}"
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || sp_die "missing ${missing[*]}: install them (apt-get install ${missing[*]})"
  sp_log "installing ${missing[*]}…"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }
}

# bench_nginx <dir>: nginx (2 workers) serving <dir>/www on a free loopback port; prints
# the port. bench_nginx_stop <dir> stops it.
bench_nginx() {
  local dir="$1" port
  port="$(sp_free_port)"
  chmod 755 "$dir"  # nginx workers run as an unprivileged user.
  mkdir -p "$dir/www" "$dir/logs"
  cat >"$dir/nginx.conf" <<CONF
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/json;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$port; root $dir/www; }
}
CONF
  nginx -p "$dir" -c "$dir/nginx.conf" || sp_die "nginx did not start (see $dir/logs/error.log)"
  echo "$port"
}

bench_nginx_stop() {
  if [ -f "$1/nginx.pid" ]; then nginx -p "$1" -c "$1/nginx.conf" -s stop 2>/dev/null || true; fi
}

# bench_wrk <url> <connections> <seconds> [header]: "rps p50_ms p99_ms" of wrk -t2
# (closed loop). Refuses non-2xx answers and socket errors (a 429 or a timeout is no
# throughput).
bench_wrk() {
  local url="$1" connections="$2" seconds="$3" out
  # A slow answer is latency (its p99 shows), not an error: wrk's default timeout is 2 s.
  local args=(-t2 -c"$connections" -d"${seconds}s" --latency --timeout 30s)
  [ $# -gt 3 ] && args+=(-H "$4")
  out="$(wrk "${args[@]}" "$url")" || sp_die "wrk failed on $url"
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
    echo "$out" >&2
    sp_die "errors or non-2xx answers from $url (rate limit?): refusing the run"
  fi
  awk '
    function ms(v) {
      if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000
      if (v ~ /s$/) return v * 1000; return v
    }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.1f %.3f %.3f\n", rps, p50, p99 }' <<<"$out"
}

# bench_driver_field <line> <field>: a field of a driver's "calls=… rate=…/s p99_ms=…" line.
bench_driver_field() {
  grep -oP "(^| )$2=\K[0-9.]+" <<<"$1" | head -1
}

# bench_pgbench <script> <clients> <seconds> <database URL> [search_path]: pgbench
# (prepared statements, 2 threads) running <script>, as "calls=… rate=…/s p50_ms=…
# p90_ms=… p99_ms=…" from its per-transaction log. Refuses failed transactions.
bench_pgbench() {
  local script="$1" clients="$2" seconds="$3" url="$4" path="${5:-public}" tmp n tps failed
  tmp="$(mktemp -d)"
  (cd "$tmp" && PGOPTIONS="-c search_path=$path" pgbench -n -M prepared -c "$clients" -j 2 -T "$seconds" -l \
    -f "$script" "$url" >"$tmp/pgbench.out" 2>"$tmp/pgbench.err") ||
    { cat "$tmp/pgbench.err" >&2; rm -rf "$tmp"; sp_die "pgbench failed on $script"; }
  failed="$(grep -oP 'number of failed transactions: \K[0-9]+' "$tmp/pgbench.out" || echo 0)"
  if [ "$failed" != 0 ] || grep -q 'ERROR' "$tmp/pgbench.err"; then
    cat "$tmp/pgbench.out" "$tmp/pgbench.err" >&2
    rm -rf "$tmp"
    sp_die "pgbench: failed transactions in $script"
  fi
  # Per-transaction log: the third column is the latency in microseconds.
  cat "$tmp"/pgbench_log.* | awk '{print $3}' | sort -n >"$tmp/lat"
  n="$(wc -l <"$tmp/lat")"
  tps="$(grep -oP 'tps = \K[0-9.]+' "$tmp/pgbench.out" | head -1)"
  awk -v n="$n" -v tps="$tps" '
    { lat[NR] = $1 }
    function pct(p) { i = int(n * p) + 1; if (i > n) i = n; return lat[i] / 1000 }
    END { printf "calls=%d errors=0 rate=%.1f/s p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f\n", n, tps, pct(0.5), pct(0.9), pct(0.99) }' \
    "$tmp/lat"
  rm -rf "$tmp"
}

# bench_seed_submissions <database URL>: 1,000,000 submissions over 50,000 parties (once; ≈1 min).
bench_seed_submissions() {
  sp_log "seeding 1,000,000 submissions over 50,000 parties (once per database)…"
  PGOPTIONS="-c search_path=submission -c client_min_messages=warning" psql -q -v ON_ERROR_STOP=1 "$1" \
    -f "$SP_ROOT/bench/sql/seed-submissions.sql" >/dev/null
}

# bench_my_submissions <bin dir> <caller-keys.env> <submission gRPC target> <database URL> <seconds> <concurrency>:
# two lines, "service calls=… rate=…" (ListSubmissions over gRPC, the first page of a random
# party's submissions) and "pgbench calls=… rate=…" (the same SQL, same concurrency).
bench_my_submissions() {
  local bin="$1" keys="$2" target="$3" url="$4" seconds="$5" concurrency="$6" service
  # shellcheck source=/dev/null
  service="$(set -a && source "$keys" && set +a &&
    "$bin/stadtportal-bench-submissions" "$target" 50000 "$seconds" "$concurrency")" ||
    sp_die "ListSubmissions had errors: $service"
  echo "service $service"
  echo "pgbench $(bench_pgbench "$SP_ROOT/bench/sql/my-submissions.pgbench" "$concurrency" "$seconds" "$url" submission)"
}

# bench_histogram <metrics before> <metrics after> <metric> <label substring>: "calls
# p50_ms p99_ms" of the calls between the two /metrics texts, from the histogram's
# buckets interpolated linearly as Prometheus' histogram_quantile does.
bench_histogram() {
  python3 - "$1" "$2" "$3" "$4" <<'PY'
import re, sys
def buckets(path, metric, match):
    out = {}
    for line in open(path):
        if line.startswith(metric + "_bucket{") and match in line:
            le = re.search(r'le="([^"]+)"', line).group(1)
            out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return out
before, after = buckets(sys.argv[1], sys.argv[3], sys.argv[4]), buckets(sys.argv[2], sys.argv[3], sys.argv[4])
les = sorted(after)
counts = [after[le] - before.get(le, 0) for le in les]
total = counts[-1] if counts else 0
def quantile(q):
    rank, lower, below = q * total, 0.0, 0.0
    for le, c in zip(les, counts):
        if c >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / max(c - below, 1e-9)
        lower, below = le, c
    return lower
print("%d %.3f %.3f" % (total, quantile(0.5) * 1000, quantile(0.99) * 1000))
PY
}

# bench_pid_on_port <port>: the pid of the process listening on 127.0.0.1:<port>.
bench_pid_on_port() {
  ss -Htlnp "sport = :$1" 2>/dev/null | grep -oP 'pid=\K[0-9]+' | head -1
}

# bench_rss_kib <pid>: resident memory in KiB of a process (VmRSS), or of a process and
# its children as their proportional share (Pss: shared memory counted once), for
# PostgreSQL's backends.
bench_rss_kib() {
  awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}
bench_pss_tree_kib() {
  local total=0 pid kib
  for pid in "$1" $(pgrep -P "$1"); do
    kib="$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)"
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}

# bench_memory_sample <parts file>: one line "name KiB" per part of <parts file> ("name
# pid kind" lines; kind rss or tree).
bench_memory_sample() {
  local name pid kind
  while read -r name pid kind; do
    if [ "$kind" = tree ]; then
      echo "$name $(bench_pss_tree_kib "$pid")"
    else
      echo "$name $(bench_rss_kib "$pid")"
    fi
  done <"$1"
}
