"""Certificates and TLS contexts, shared by the daemon and its clients (the REST client, the CLI):
`certs` makes and fingerprints X.509 certificates, `tls` builds the SSL contexts. It imports nothing
else from corral, so both sides may use it."""
