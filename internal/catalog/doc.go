// Package catalog is the catalog of known sending services that Rampart
// ships: for each service, the include a customer's SPF record carries to
// authorise it, the host-name suffixes of its outbound servers, the domains
// it signs DKIM with by default, the DKIM selectors it has customers
// publish, and where these facts come from.
//
// The catalog is the data file services.json, embedded in the binary.
// [Load] returns it, validated by [Parse]; [Lookup] finds one [Service] by
// slug. The sender_services table is seeded from it, and its includes and
// HELO suffixes reach the DNS edge through the edge_service table. Each
// entry is checked by [Service.Validate], which also serves for services
// added by users.
//
// # Contents
//
// The catalog carries the services of the project's research that are
// marked verified and that a public source backs: 31 of its 51 verified
// rows. README.md in this directory lists them, the rows left out and why,
// and what the research had that was left out of the rows carried. Every
// entry keeps the URL its facts were checked at (SourceURL) and notes on
// what it rests on. DKIMSelectors is not yet synced into the database.
//
// # HELO suffixes
//
// The research records the suffixes of the servers' reverse DNS (PTR)
// names, not of the names they give in EHLO. The catalog uses them as EHLO
// suffixes too, on the assumption that the large services here name their
// outbound servers in EHLO as in reverse DNS, since receivers distrust an
// EHLO name that does not resolve back to the connecting address. This is
// an assumption, not a checked fact; a service for which it does not hold
// needs its own EHLO suffixes in its entry.
//
// A suffix matches host names strictly below it, on a label boundary and
// ignoring case. Suffixes must have at least two labels, so no entry can
// claim a whole top-level domain.
package catalog
