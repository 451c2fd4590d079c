# Phase "http": each outgoing HTTP request a running tool makes.
#
# Deny by default. A request may go out over an allowed scheme (https unless
# http.allowed_schemes says otherwise) to an allowed domain, and only to global addresses unless
# the data lists an exception: the gateway resolves the host first, the policy checks the class
# of every resolved address, and the gateway then connects only to those addresses, which closes
# DNS tricks that point an allowed-looking name at 127.0.0.1 or the cloud metadata service.
package gatehouse.http

import data.lib

default allow := false

allowed_schemes := object.get(data.http, "allowed_schemes", ["https"])

allow if {
	input.request.scheme in allowed_schemes
	lib.domain_allowed(input.request.host)
	addresses_permitted
}

deny contains msg if {
	not input.request.scheme in allowed_schemes
	msg := sprintf("request to %v uses %q: only %v allowed (http.allowed_schemes)", [input.request.host, input.request.scheme, concat(", ", allowed_schemes)])
}

deny contains msg if {
	not lib.domain_allowed(input.request.host)
	msg := sprintf("host %q is not in http.allowed_domains", [input.request.host])
}

# --- where the request goes ---------------------------------------------------------------
# The gateway classifies every resolved address (input.request.addresses, see
# policies/README.md): an IPv6 spelling of an IPv4 address (IPv4-mapped, NAT64, 6to4,
# IPv4-compatible, Teredo) has the class of the IPv4 address it embeds. Rules here decide on
# that class and never parse addresses. Only `global` addresses are allowed, unless
# http.allowed_classes lists the class (e.g. ["private"] for an internal API), or
# http.allow_private is true, which permits every class (the address check off).

allowed_classes := object.get(data.http, "allowed_classes", [])

class_permitted(address) if address.class == "global"

class_permitted(address) if address.class in allowed_classes

class_permitted(_) if data.http.allow_private == true

addresses := input.request.addresses if is_array(input.request.addresses)

else := []

addresses_permitted if {
	count(addresses) > 0
	count([a | some a in addresses; not class_permitted(a)]) == 0
}

# The address as the log reader needs it: the IPv6 spelling and the IPv4 it stands for.
spelled(address) := sprintf("%v (%v of %v)", [address.ip, address.embedding, address.embedded_ipv4]) if {
	is_string(address.embedding)
}

spelled(address) := sprintf("%v", [address.ip]) if address.embedding == null

deny contains msg if {
	some address in addresses
	not class_permitted(address)
	msg := sprintf("host %q resolves to %v of class %v, which is not global and not in http.allowed_classes", [input.request.host, spelled(address), address.class])
}

# Nothing resolved means nothing could be checked.
deny contains msg if {
	count(addresses) == 0
	msg := sprintf("host %q has no resolved addresses to check", [input.request.host])
}

# --- brokered credentials -----------------------------------------------------------------
# http.credentials lists headers the gateway fills in from its [secrets] on requests to one
# host, e.g. {"host": "api.github.com", "headers": {"authorization": "Bearer {{secret.github}}"}},
# optionally with "scheme" (default "https") and "port". The host must match exactly (no
# subdomains), so a secret goes only where it is meant to. The request must still be allowed
# by the rules above: a denied request carries nothing.

credentials := object.get(data.http, "credentials", [])

credential_applies(credential) if {
	lower(credential.host) == input.request.host
	input.request.scheme == object.get(credential, "scheme", "https")
	input.request.port == object.get(credential, "port", input.request.port)
}

injected_headers := [c.headers | some c in credentials; credential_applies(c)]

inject := {"headers": object.union_n(injected_headers)} if count(injected_headers) > 0

# --- what the session remembers -------------------------------------------------------------
# Once a tool of the session read a file under fs.sensitive_prefixes (gatehouse.fs labelled the
# session "read_sensitive"), its requests may go only to the hosts in http.trusted_hosts (exact,
# lower-case names): an agent steered by a prompt injection cannot carry what it read anywhere
# else, through this tool or the next.
trusted_hosts := object.get(data.http, "trusted_hosts", [])

# The sensitive reads still in the session's history, oldest first.
sensitive_reads := [sprintf("%v (%v)", [item.target, item.tool]) |
	some item in input.session.history
	"read_sensitive" in item.labels
]

earlier_read := sensitive_reads[0] if count(sensitive_reads) > 0

else := "a file under fs.sensitive_prefixes (no longer in the session's history)"

deny contains msg if {
	"read_sensitive" in input.session.labels
	not input.request.host in trusted_hosts
	msg := sprintf("no request to %q from this session: it read %v, so only http.trusted_hosts may be contacted", [input.request.host, earlier_read])
}

# --- a person in the loop -------------------------------------------------------------------
# Requests to the hosts in approval.hosts (exact, lower-case names) wait for a person's approval,
# asked while the tool's request waits; every other rule still applies first.
ask contains msg if {
	input.request.host in object.get(data.approval, "hosts", [])
	msg := sprintf("requests to %v need a person's approval (approval.hosts)", [input.request.host])
}
