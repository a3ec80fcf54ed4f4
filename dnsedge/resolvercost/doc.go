// Package resolvercost measures how many queries a recursive resolver with
// QNAME minimisation (RFC 9156) sends the DNS edge for one SPF check of a
// new (address, HELO, domain). Its only code is a test behind the build tag
// resolverbench, which `make bench-dns` runs against an edge it started, with
// an unmodified Unbound in front; see docs/benchmarks.md.
package resolvercost
