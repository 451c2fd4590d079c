# Phase "http": each outgoing HTTP request a running tool makes.
#
# Deny by default. A request may go out over an allowed scheme (https unless
# http.allowed_schemes says otherwise) to an allowed domain, and never to an address inside the
# gateway's own network: the gateway resolves the host first, the policy checks every resolved
# address, and the gateway then connects only to those addresses, which closes DNS tricks that
# point an allowed-looking name at 127.0.0.1 or the cloud metadata service.
package gatehouse.http

import data.lib

default allow := false

allowed_schemes := object.get(data.http, "allowed_schemes", ["https"])

allow if {
	input.request.scheme in allowed_schemes
	lib.domain_allowed(input.request.host)
}

deny contains msg if {
	not input.request.scheme in allowed_schemes
	msg := sprintf("request to %v uses %q: only %v allowed (http.allowed_schemes)", [input.request.host, input.request.scheme, concat(", ", allowed_schemes)])
}

deny contains msg if {
	not lib.domain_allowed(input.request.host)
	msg := sprintf("host %q is not in http.allowed_domains", [input.request.host])
}

# Loopback, private, shared, link-local (incl. the 169.254.169.254 metadata service),
# multicast and reserved ranges, and IPv4-mapped IPv6 (which would smuggle any of those).
blocked_cidrs := [
	"0.0.0.0/8",
	"10.0.0.0/8",
	"100.64.0.0/10",
	"127.0.0.0/8",
	"169.254.0.0/16",
	"172.16.0.0/12",
	"192.0.0.0/24",
	"192.168.0.0/16",
	"198.18.0.0/15",
	"224.0.0.0/4",
	"240.0.0.0/4",
	"::/128",
	"::1/128",
	"::ffff:0:0/96",
	"fc00::/7",
	"fe80::/10",
	"ff00::/8",
]

deny contains msg if {
	not data.http.allow_private
	some ip in input.request.resolved_ips
	some cidr in blocked_cidrs
	net.cidr_contains(cidr, ip)
	msg := sprintf("host %q resolves to %v, inside blocked range %v (set http.allow_private to permit)", [input.request.host, ip, cidr])
}

# Nothing resolved means nothing could be checked.
deny contains msg if {
	count(object.get(input.request, "resolved_ips", [])) == 0
	msg := sprintf("host %q has no resolved addresses to check", [input.request.host])
}
