#!/usr/bin/perl
# SPF with Mail::SPF, as a receiver runs it, asking the lab's resolver.
#
# stdin: {"resolver": "127.0.0.1:53", "cases": [{"id", "ip", "helo", "sender"}]}
# stdout: one JSON object per case: {"id", "result", "detail"}.
use strict;
use warnings;
use JSON::PP;
use Mail::SPF;
use Net::DNS::Resolver;

local $/;
my $req = decode_json(<STDIN>);
my ($host, $port) = $req->{resolver} =~ /^(.*):(\d+)$/;
my $dns = Net::DNS::Resolver->new(nameservers => [$host], port => $port, recurse => 1,
	udp_timeout => 10, tcp_timeout => 10, retry => 2);
my $server = Mail::SPF::Server->new(dns_resolver => $dns);
$| = 1;
for my $c (@{ $req->{cases} }) {
	my ($result, $detail);
	eval {
		my $request = Mail::SPF::Request->new(
			versions      => [1],
			scope         => 'mfrom',
			identity      => $c->{sender},
			ip_address    => $c->{ip},
			helo_identity => $c->{helo},
		);
		my $r = $server->process($request);
		$result = $r->code;
		$detail = $r->local_explanation;
		1;
	} or do {
		$result = 'exception';
		$detail = "$@";
		$detail =~ s/\s+$//;
	};
	print encode_json({ id => $c->{id}, result => "$result", detail => "$detail" }), "\n";
}
