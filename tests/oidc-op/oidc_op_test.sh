#!/usr/bin/env bash
# The OpenID Provider stand-in (scripts/lib/op.sh) checked as an independent party,
# without our services: started as scripts start it, then openid-client as the relying
# party logs in at it over HTTP and checks what it answers and what it refuses
# (tools/oidc-upstream/rp_test.mjs).
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib/common.sh"
source "$SP_ROOT/scripts/lib/op.sh"

TMP="$(mktemp -d /tmp/stadtportal-oidc-op.XXXXXX)"
trap 'sp_stop_oidc_op "$TMP/op"; rm -rf "$TMP"' EXIT
PORT="$(sp_free_port)"
export STADTPORTAL_OIDC_OP_CLIENT_SECRET="$(sp_secret)"
export STADTPORTAL_OIDC_OP_REDIRECT_URI="http://127.0.0.1:$(sp_free_port)/api/v1/auth/oidc/generic/callback"
export STADTPORTAL_OIDC_OP_ISSUER="http://127.0.0.1:$PORT"
sp_start_oidc_op "$TMP/op" "$PORT" "$TMP/op.log" >/dev/null
node --test "$("$SP_ROOT/scripts/npm-tools")/oidc-upstream/rp_test.mjs" || { tail -n 20 "$TMP/op.log" >&2; exit 1; }
