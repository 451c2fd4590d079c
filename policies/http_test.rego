package gatehouse.http_test

import data.fixtures
import data.gatehouse.http

request(changes) := fixtures.patch(fixtures.http_input, {"request": changes})

# An address as the gateway describes it (src/host/address.rs classifies; these tests only
# check what the policy does with the class).
address(ip, class) := {"ip": ip, "class": class, "embedded_ipv4": null, "embedding": null}

spelling(ip, class, ipv4, embedding) := {"ip": ip, "class": class, "embedded_ipv4": ipv4, "embedding": embedding}

resolving_to(addresses) := request({"resolved_ips": [a.ip | some a in addresses], "addresses": addresses})

allowed(doc) if {
	http.allow with input as doc with data.http as fixtures.http
	count(http.deny) == 0 with input as doc with data.http as fixtures.http
}

allowed_with(doc, data_http) if {
	http.allow with input as doc with data.http as object.union(fixtures.http, data_http)
	count(http.deny) == 0 with input as doc with data.http as object.union(fixtures.http, data_http)
}

reasons(doc) := r if {
	r := http.deny with input as doc with data.http as fixtures.http
}

public := address("93.184.215.14", "global")

non_global_classes := [
	"loopback", "private", "link-local", "metadata", "multicast", "unspecified",
	"documentation", "reserved", "shared", "benchmarking", "unique-local",
]

test_shipped_data_allows_no_request if {
	not http.allow with input as fixtures.http_input
}

test_https_to_allowed_domain_with_public_address_is_allowed if {
	allowed(fixtures.http_input)
	allowed(resolving_to([address("2606:4700:4700::1111", "global")]))
	allowed(resolving_to([spelling("64:ff9b::5db8:d70e", "global", "93.184.215.14", "nat64")]))
}

test_plain_http_is_denied if {
	doc := request({"scheme": "http", "port": 80})
	not allowed(doc)
	"request to api.example.com uses \"http\": only https allowed (http.allowed_schemes)" in reasons(doc)
}

test_allowed_schemes_can_admit_plain_http if {
	doc := request({"scheme": "http", "port": 80})
	allowed_with(doc, {"allowed_schemes": ["http", "https"]})
}

test_numeric_host_spellings_are_not_allowed_domains if {
	every host in ["2130706433", "0x7f000001", "127.1", "localhost"] {
		not allowed(fixtures.patch(resolving_to([address("127.0.0.1", "loopback")]), {"request": {"host": host}}))
	}
}

test_other_domain_is_denied if {
	doc := request({"host": "evil.example"})
	not allowed(doc)
	"host \"evil.example\" is not in http.allowed_domains" in reasons(doc)
}

test_every_class_but_global_is_denied_even_beside_a_public_address if {
	every class in non_global_classes {
		doc := resolving_to([public, address("192.0.2.1", class)])
		not allowed(doc)
		not http.allow with input as doc with data.http as fixtures.http
		msg := sprintf("host \"api.example.com\" resolves to 192.0.2.1 of class %v, which is not global and not in http.allowed_classes", [class])
		msg in reasons(doc)
	}
}

test_an_embedded_ipv4_is_denied_by_its_class_and_named if {
	doc := resolving_to([spelling("64:ff9b::7f00:1", "loopback", "127.0.0.1", "nat64")])
	not allowed(doc)
	"host \"api.example.com\" resolves to 64:ff9b::7f00:1 (nat64 of 127.0.0.1) of class loopback, which is not global and not in http.allowed_classes" in reasons(doc)
	every s in [
		spelling("::ffff:169.254.169.254", "metadata", "169.254.169.254", "mapped"),
		spelling("64:ff9b:1::a9fe:a9fe", "metadata", "169.254.169.254", "nat64"),
		spelling("2002:a9fe:a9fe::", "metadata", "169.254.169.254", "6to4"),
		spelling("::a9fe:a9fe", "metadata", "169.254.169.254", "compatible"),
		spelling("2001:0:4136:e378:8000:63bf:5601:5601", "metadata", "169.254.169.254", "teredo"),
	] {
		not allowed(resolving_to([s]))
	}
}

test_allowed_classes_permit_only_the_classes_listed if {
	private := resolving_to([address("10.1.2.3", "private")])
	allowed_with(private, {"allowed_classes": ["private"]})
	allowed_with(resolving_to([public, address("10.1.2.3", "private")]), {"allowed_classes": ["private"]})
	every class in ["loopback", "metadata", "link-local", "unique-local"] {
		not allowed_with(resolving_to([address("10.1.2.3", "private"), address("192.0.2.1", class)]), {"allowed_classes": ["private"]})
	}
}

test_allow_private_permits_every_class_as_before if {
	every class in non_global_classes {
		allowed_with(resolving_to([address("192.0.2.1", class)]), {"allow_private": true})
	}
	allowed_with(resolving_to([spelling("64:ff9b::7f00:1", "loopback", "127.0.0.1", "nat64")]), {"allow_private": true})
	not allowed_with(resolving_to([address("10.1.2.3", "private")]), {"allow_private": "yes"})
}

test_unresolved_host_is_denied if {
	doc := resolving_to([])
	not allowed(doc)
	"host \"api.example.com\" has no resolved addresses to check" in reasons(doc)
}

test_an_input_without_addresses_is_denied if {
	doc := object.remove(fixtures.http_input, ["request"])
	without := object.union(doc, {"request": object.remove(fixtures.http_input.request, ["addresses"])})
	not allowed(without)
	"host \"api.example.com\" has no resolved addresses to check" in reasons(without)
}

test_an_unclassified_address_is_denied if {
	not allowed(request({"addresses": [{"ip": "93.184.215.14"}]}))
	not allowed(request({"addresses": ["93.184.215.14"]}))
	not allowed(request({"addresses": "93.184.215.14"}))
}

github := {"host": "api.example.com", "headers": {"authorization": "Bearer {{secret.github}}"}}

injected(doc, credentials) := i if {
	i := http.inject with input as doc with data.http as object.union(fixtures.http, {"credentials": credentials})
}

test_no_credentials_inject_nothing if {
	not http.inject with input as fixtures.http_input with data.http as fixtures.http
}

test_a_credential_is_injected_into_requests_to_its_host_over_https if {
	injected(fixtures.http_input, [github]) == {"headers": {"authorization": "Bearer {{secret.github}}"}}
}

test_a_credential_never_goes_to_another_host_a_subdomain_or_plain_http if {
	not injected(request({"host": "evil.example.com"}), [github])
	not injected(request({"host": "x.api.example.com"}), [github])
	not injected(request({"scheme": "http", "port": 80}), [github])
}

test_a_credential_may_name_its_scheme_and_port if {
	local := {"host": "127.0.0.1", "scheme": "http", "port": 8080, "headers": {"x-api-key": "{{secret.local}}"}}
	doc := request({"host": "127.0.0.1", "scheme": "http", "port": 8080})
	injected(doc, [local]) == {"headers": {"x-api-key": "{{secret.local}}"}}
	not injected(request({"host": "127.0.0.1", "scheme": "http", "port": 8081}), [local])
}

test_credentials_for_one_host_combine if {
	tenant := {"host": "api.example.com", "headers": {"x-tenant-key": "{{secret.tenant}}"}}
	injected(fixtures.http_input, [github, tenant]) == {"headers": {
		"authorization": "Bearer {{secret.github}}",
		"x-tenant-key": "{{secret.tenant}}",
	}}
}

# --- sessions that read something sensitive ------------------------------------------------

read_secret := {
	"call": "0193a1b2-0000-7000-8000-00000000000a", "time": "2026-11-22T03:04:00.000Z",
	"phase": "fs", "tool": "files_read_file", "verdict": "allow",
	"operation": "read", "target": "/data/secrets/token", "labels": ["read_sensitive"],
}

after(history, labels, changes) := fixtures.patch(request(changes), {"session": object.union(fixtures.session, {"labels": labels, "history": history, "decisions": count(history)})})

trusting(hosts) := object.union(fixtures.http, {"trusted_hosts": hosts})

test_after_a_sensitive_read_only_trusted_hosts_may_be_contacted if {
	doc := after([read_secret], ["read_sensitive"], {})
	not allowed(doc)
	"no request to \"api.example.com\" from this session: it read /data/secrets/token (files_read_file), so only http.trusted_hosts may be contacted" in reasons(doc)

	trusted := trusting(["api.example.com"])
	http.allow with input as doc with data.http as trusted
	count(http.deny) == 0 with input as doc with data.http as trusted
}

test_a_read_that_left_the_history_is_still_remembered_by_its_label if {
	doc := after([], ["read_sensitive"], {})
	"no request to \"api.example.com\" from this session: it read a file under fs.sensitive_prefixes (no longer in the session's history), so only http.trusted_hosts may be contacted" in reasons(doc)
}

test_a_session_without_the_label_is_not_restricted if {
	other := object.union(read_secret, {"labels": []})
	allowed(after([other], ["something_else"], {}))
	allowed(request({}))
}

# --- a person in the loop ----------------------------------------------------------------

test_no_request_asks_with_the_shipped_data if {
	count(http.ask) == 0 with input as fixtures.http_input
}

test_a_request_to_a_host_in_approval_hosts_asks_a_person if {
	host := fixtures.http_input.request.host
	asks := http.ask with input as fixtures.http_input with data.approval as {"hosts": [host]}
	asks == {sprintf("requests to %v need a person's approval (approval.hosts)", [host])}
	count(http.ask) == 0 with input as fixtures.http_input with data.approval as {"hosts": ["other.example"]}
}
