// Package interop runs the records Rampart publishes through the software
// receivers run: an unmodified Unbound (qname minimisation, 0x20, DNSSEC
// validation) in front of NSD (the customers' and the vendors' zones) and
// the built dnsedge, and the SPF, DKIM and DMARC libraries and tools of
// the distribution (pyspf, libspf2's spfquery, Mail::SPF, dkimpy,
// opendkim-testkey, opendmarc-check) and mailauth from npm.
//
// Its test carries the build tag `interop` and runs in `make interop`,
// not in `make test`: it needs those packages (scripts/interop-setup
// installs them) and, for the tools that read /etc/resolv.conf, a network
// namespace of its own (scripts/interop-run makes one). It writes the matrix
// of library × case to docs/interop.md.
package interop
