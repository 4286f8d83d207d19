#!/usr/bin/env bash
# make_certs.sh: a throwaway CA and the certificates it signs, for the test
# servers (tests/http_servers.sh, tests/nats_server.sh), into one folder.
#   tests/make_certs.sh DIR   makes DIR/ca.pem, server.pem and server.key
#                             (for 127.0.0.1 and localhost), client.pem and
#                             client.key; kept when they are there already
# Valid two days; keys are P-256. Needs openssl.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
tls=$1
[ -s "$tls/server.pem" ] && [ -s "$tls/ca.pem" ] && [ -s "$tls/client.pem" ] && exit 0
mkdir -p "$tls"
# Our own config, so the system openssl.cnf cannot add or clash with
# extensions.
cat > "$tls/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = actio test CA
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
openssl req -x509 -new -config "$tls/openssl.cnf" -extensions ca -days 2 \
  -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
openssl req -new -config "$tls/openssl.cnf" -subj /CN=localhost \
  -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days 2 \
  -extfile "$tls/openssl.cnf" -extensions server -out "$tls/server.pem" 2>/dev/null
openssl req -new -config "$tls/openssl.cnf" -subj /CN=actio-test-client \
  -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$tls/client.key" -out "$tls/client.csr" 2>/dev/null
openssl x509 -req -in "$tls/client.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days 2 \
  -extfile "$tls/openssl.cnf" -extensions client -out "$tls/client.pem" 2>/dev/null
rm -f "$tls/server.csr" "$tls/client.csr"
chmod 600 "$tls/ca.key" "$tls/server.key" "$tls/client.key"
