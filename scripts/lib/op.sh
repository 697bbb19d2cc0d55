# An OpenID Provider that is not ours, on loopback: npm oidc-provider (certified by the
# OpenID Foundation) with tools/oidc-upstream/server.mjs, standing in for OpenID Connect
# upstreams in local stacks and tests only (docs/federation.md). Sourced after
# scripts/lib/common.sh.

# sp_start_oidc_op <dir> <port> <log>: starts the provider on 127.0.0.1:<port> in the
# background (issuer http://127.0.0.1:<port>) and prints its pid once its discovery
# document answers. Its signing keys (RS256 and ES256) are made in <dir>/jwks.json on
# first use and kept. Client "stadtportal" with the secret $STADTPORTAL_OIDC_OP_CLIENT_SECRET
# and the redirect URI $STADTPORTAL_OIDC_OP_REDIRECT_URI (default: the gateway's
# http://127.0.0.1:8080/api/v1/auth/oidc/generic/callback).
sp_start_oidc_op() {
  local dir="$1" port="$2" log="$3" tools pid
  [[ "$port" =~ ^[0-9]{1,5}$ ]] || sp_die "sp_start_oidc_op: bad port '$port'"
  [ -n "${STADTPORTAL_OIDC_OP_CLIENT_SECRET:-}" ] || sp_die "STADTPORTAL_OIDC_OP_CLIENT_SECRET is not set"
  # Already running from this directory: its pid.
  if [ -s "$dir/op.pid" ] && kill -0 "$(cat "$dir/op.pid")" 2>/dev/null; then
    cat "$dir/op.pid"
    return 0
  fi
  tools="$("$SP_ROOT/scripts/npm-tools")"
  mkdir -p "$dir"
  STADTPORTAL_OIDC_OP_PORT="$port" STADTPORTAL_OIDC_OP_STATE="$dir" \
    node "$tools/oidc-upstream/server.mjs" >>"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/op.pid"
  local i
  for i in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/.well-known/openid-configuration" >/dev/null 2>&1; then
      echo "$pid"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$log" >&2
  sp_die "the test OpenID Provider did not start (see $log)"
}

# sp_stop_oidc_op <dir>: stops the provider started from <dir>.
sp_stop_oidc_op() {
  local dir="$1"
  if [ -s "$dir/op.pid" ]; then kill "$(cat "$dir/op.pid")" 2>/dev/null || true; fi
  rm -f "$dir/op.pid"
}
