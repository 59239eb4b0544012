#!/bin/sh
# make-certs.sh makes a demo PKI for trying github.com/certgate/mtls with examples/whoami and curl:
# a CA for client certificates, a CA for the server, a client certificate, a server certificate
# for 127.0.0.1, and a partner's self-signed client certificate with its fingerprint.
#
#	sh examples/whoami/make-certs.sh [PARENT]
#
# writes them into PARENT/mtls-demo (default: ./mtls-demo). POSIX sh; needs the openssl command
# line, OpenSSL 1.1.1 or later (on macOS Homebrew's, not the system's LibreSSL). The commands
# after the first line are the recipe of docs/getting-started.md, word for word (a test checks it).
set -eu
cd "${1:-.}"

mkdir -p mtls-demo && cd mtls-demo
# The extensions of the certificates the CAs issue: a client certificate needs the clientAuth
# extended key usage and must not be a CA.
printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' \
  'extendedKeyUsage=clientAuth' > client.ext
printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' \
  'extendedKeyUsage=serverAuth' 'subjectAltName=IP:127.0.0.1,DNS:localhost' > server.ext
# The CA that issues client certificates (clients-ca.pem) and the server's CA (server-ca.pem).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj '/CN=Demo Clients CA' -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign -keyout clients-ca-key.pem -out clients-ca.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj '/CN=Demo Server CA' -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign -keyout server-ca-key.pem -out server-ca.pem
# A client certificate for alice, issued by clients-ca.pem.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=alice' \
  -keyout client-key.pem -out client.csr
openssl x509 -req -in client.csr -CA clients-ca.pem -CAkey clients-ca-key.pem -CAcreateserial \
  -days 365 -extfile client.ext -out client.pem
# The server certificate for 127.0.0.1 and localhost, issued by server-ca.pem.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=localhost' \
  -keyout server-key.pem -out server.csr
openssl x509 -req -in server.csr -CA server-ca.pem -CAkey server-ca-key.pem -CAcreateserial \
  -days 365 -extfile server.ext -out server.pem
# A partner's self-signed client certificate, trusted by its fingerprint (whoami -pin).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -subj '/CN=partner' -addext basicConstraints=critical,CA:FALSE \
  -addext extendedKeyUsage=clientAuth -keyout partner-key.pem -out partner.pem
openssl x509 -in partner.pem -noout -fingerprint -sha256 > partner.sha256
# Each certificate verifies against its CA.
openssl verify -CAfile clients-ca.pem client.pem
openssl verify -CAfile server-ca.pem server.pem
