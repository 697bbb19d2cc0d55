# A SAML 2.0 identity provider that is not ours, on loopback: Debian's SimpleSAMLphp
# behind PHP's built-in web server, standing in for BundID/BayernID in local stacks and
# tests only (docs/federation.md). Sourced after scripts/lib/common.sh.

SP_SAML_IDP_WWW=/usr/share/simplesamlphp/www

# sp_start_saml_idp <dir> <port> <SP metadata file> <log>: sets up <dir> on first use
# (configuration, a signing/encryption key pair, the hosted IdP's metadata; existing keys
# are kept), trusts the SP described by <SP metadata file> (SAML metadata XML) and starts
# the IdP on 127.0.0.1:<port> in the background. Prints its pid. Its metadata is at
# http://127.0.0.1:<port>/simplesaml/saml2/idp/metadata.php. Assertions are signed, and
# encrypted when the SP's metadata carries an encryption key.
sp_start_saml_idp() {
  local dir="$1" port="$2" sp_metadata="$3" log="$4"
  [ -d "$SP_SAML_IDP_WWW" ] || sp_die "SimpleSAMLphp is not installed (scripts/install-deps)"
  [ -r "$sp_metadata" ] || sp_die "SP metadata $sp_metadata is not readable"
  [[ "$port" =~ ^[0-9]{1,5}$ ]] || sp_die "sp_start_saml_idp: bad port '$port'"
  # The paths go into PHP string literals.
  case "$dir$sp_metadata" in *[\'\\]*) sp_die "sp_start_saml_idp: quote or backslash in a path" ;; esac
  # Already running from this directory: its pid.
  if [ -s "$dir/idp.pid" ] && kill -0 "$(cat "$dir/idp.pid")" 2>/dev/null; then
    cat "$dir/idp.pid"
    return 0
  fi
  mkdir -p "$dir"/{config,cert,metadata,log,tmp,data,sessions}
  dir="$(cd "$dir" && pwd)"
  sp_metadata="$(cd "$(dirname "$sp_metadata")" && pwd)/$(basename "$sp_metadata")"
  local base="http://127.0.0.1:$port/simplesaml/"
  if [ ! -s "$dir/cert/idp.key" ] || [ ! -s "$dir/cert/idp.crt" ]; then
    (umask 077 && openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days 3650 \
      -subj "/CN=SAML IdP stand-in (BundID, BayernID)" \
      -keyout "$dir/cert/idp.key" -out "$dir/cert/idp.crt" 2>/dev/null) \
      || sp_die "could not generate the IdP key pair in $dir/cert"
  fi
  [ -s "$dir/secretsalt" ] || (umask 077 && sp_secret >"$dir/secretsalt")
  # Encrypt assertions when the SP publishes a key usable for encryption (a KeyDescriptor
  # with use="encryption" or without use).
  local encrypt=false
  if grep -Eq '<([A-Za-z0-9]+:)?KeyDescriptor( +use="encryption")? *>' "$sp_metadata"; then encrypt=true; fi

  cat >"$dir/config/config.php" <<PHP
<?php
\$config = [
    'baseurlpath' => '$base',
    'certdir' => '$dir/cert/',
    'loggingdir' => '$dir/log/',
    'datadir' => '$dir/data/',
    'tempdir' => '$dir/tmp',
    'metadatadir' => '$dir/metadata/',
    'secretsalt' => '$(cat "$dir/secretsalt")',
    'auth.adminpassword' => '$(cat "$dir/secretsalt")',
    'admin.protectindexpage' => true,
    'admin.protectmetadata' => false,
    'technicalcontact_name' => 'stadtportal',
    'technicalcontact_email' => 'na@example.org',
    'timezone' => 'UTC',
    'enable.saml20-idp' => true,
    'enable.shib13-idp' => false,
    'module.enable' => ['exampleauth' => true, 'core' => true, 'saml' => true, 'admin' => true],
    'logging.level' => SimpleSAML\Logger::INFO,
    'logging.handler' => 'file',
    'logging.logfile' => 'simplesamlphp.log',
    'session.cookie.secure' => false,
    'session.phpsession.savepath' => '$dir/sessions',
    'store.type' => 'phpsession',
    'language.default' => 'de',
    'metadata.sources' => [
        ['type' => 'flatfile', 'directory' => '$dir/metadata/'],
        ['type' => 'xml', 'file' => '$sp_metadata'],
    ],
];
PHP
  # The test people (docs/federation.md): the attributes the AKDB/BundID interface releases,
  # by urn:oid name; "assurance" is not released, it becomes the AuthnContextClassRef.
  cat >"$dir/config/authsources.php" <<'PHP'
<?php
$config = [
    'admin' => ['core:AdminPassword'],
    'test-people' => [
        'exampleauth:UserPass',
        'erika:erika-test-1' => [
            'assurance' => ['STORK-QAA-Level-3'],
            'urn:oid:2.5.4.42' => ['Erika'],
            'urn:oid:2.5.4.4' => ['Mustermann'],
            'urn:oid:1.2.40.0.10.2.1.1.55' => ['1964-08-12'],
            'urn:oid:0.9.2342.19200300.100.1.3' => ['erika.mustermann@example.org'],
            'urn:oid:2.5.4.16' => ['Heidestraße 17, 51147 Köln'],
            'urn:oid:2.5.4.9' => ['Heidestraße 17'],
            'urn:oid:2.5.4.17' => ['51147'],
            'urn:oid:2.5.4.7' => ['Köln'],
            'urn:oid:1.3.6.1.4.1.25484.494450.3' => ['bPK2-erika-0c7f3a9e5d1b4c2a'],
        ],
        // Linked to a local account by step-up in the OpenID Provider's e2e test only.
        'lena:lena-test-1' => [
            'assurance' => ['STORK-QAA-Level-3'],
            'urn:oid:2.5.4.42' => ['Lena'],
            'urn:oid:2.5.4.4' => ['Linkmann'],
            'urn:oid:1.2.40.0.10.2.1.1.55' => ['1991-04-23'],
            'urn:oid:0.9.2342.19200300.100.1.3' => ['lena.linkmann@example.org'],
            'urn:oid:2.5.4.16' => ['Hauptmarkt 1, 90403 Nürnberg'],
            'urn:oid:2.5.4.9' => ['Hauptmarkt 1'],
            'urn:oid:2.5.4.17' => ['90403'],
            'urn:oid:2.5.4.7' => ['Nürnberg'],
            'urn:oid:1.3.6.1.4.1.25484.494450.3' => ['bPK2-lena-7d3c1a90e4b25f68'],
        ],
        'max:max-test-1' => [
            'assurance' => ['STORK-QAA-Level-4'],
            'urn:oid:2.5.4.42' => ['Max'],
            'urn:oid:2.5.4.4' => ['Mustermann'],
            'urn:oid:1.2.40.0.10.2.1.1.55' => ['1980-01-31'],
            'urn:oid:0.9.2342.19200300.100.1.3' => ['max.mustermann@example.org'],
            'urn:oid:2.5.4.16' => ['Marienplatz 8, 80331 München'],
            'urn:oid:2.5.4.9' => ['Marienplatz 8'],
            'urn:oid:2.5.4.17' => ['80331'],
            'urn:oid:2.5.4.7' => ['München'],
            'urn:oid:1.3.6.1.4.1.25484.494450.3' => ['bPK2-max-5e2a8b61f0d94c77'],
        ],
    ],
];
PHP
  cat >"$dir/metadata/saml20-idp-hosted.php" <<PHP
<?php
\$metadata['${base}saml2/idp/metadata.php'] = [
    'host' => '__DEFAULT__',
    'privatekey' => 'idp.key',
    'certificate' => 'idp.crt',
    'auth' => 'test-people',
    'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    'saml20.sign.assertion' => true,
    'saml20.sign.response' => true,
    // AuthnRequests must be signed with a key from the SP's metadata.
    'validate.authnrequest' => true,
    'assertion.encryption' => $encrypt,
    'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:uri',
    'NameIDFormat' => 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
    'authproc' => [
        // The person's assurance level becomes the assertion's AuthnContextClassRef.
        10 => [
            'class' => 'core:PHP',
            'code' => '
                \$state["saml:AuthnContextClassRef"] = \$attributes["assurance"][0];
                unset(\$attributes["assurance"]);
            ',
        ],
        // The bPK2 is the persistent NameID, as with BundID.
        20 => [
            'class' => 'saml:AttributeNameID',
            'attribute' => 'urn:oid:1.3.6.1.4.1.25484.494450.3',
            'Format' => 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
        ],
    ],
];
PHP
  # The SP is trusted from its XML metadata (metadata.sources); no PHP-defined SPs.
  echo '<?php' >"$dir/metadata/saml20-sp-remote.php"

  SIMPLESAMLPHP_CONFIG_DIR="$dir/config" \
    php -d "session.save_path=$dir/sessions" -d display_errors=stderr \
    -S "127.0.0.1:$port" -t "$SP_SAML_IDP_WWW" "$SP_ROOT/scripts/lib/idp/router.php" >>"$log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/idp.pid"

  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "${base}saml2/idp/metadata.php" 2>/dev/null && { echo "$pid"; return 0; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  sp_die "the SAML IdP did not start (see $log and $dir/log/simplesamlphp.log)"
}

# sp_stop_saml_idp <dir>: stops the IdP sp_start_saml_idp started in <dir>.
sp_stop_saml_idp() {
  local pidfile="$1/idp.pid"
  [ -s "$pidfile" ] || return 0
  kill "$(cat "$pidfile")" 2>/dev/null || true
  rm -f "$pidfile"
}

# sp_saml_sp_placeholder <file> <entity id> <certificate PEM file>: a first description of
# our service provider (entity id and key only) for sp_start_saml_idp, until the identity
# service serves the real one; the IdP reads the file at every request, so writing the
# served metadata over it later takes effect at once. With the key in it, the IdP encrypts.
sp_saml_sp_placeholder() {
  local file="$1" entity="$2" cert="$3" body
  case "$entity" in *[\"\<\>\&]*) sp_die "sp_saml_sp_placeholder: bad entity id" ;; esac
  body="$(grep -v -- '-----' "$cert" | tr -d '\n')" || sp_die "sp_saml_sp_placeholder: cannot read $cert"
  cat >"$file" <<XML
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="$entity">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor><ds:KeyInfo><ds:X509Data><ds:X509Certificate>$body</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
XML
}
