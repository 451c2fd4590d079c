package gatehouse.http_test

import data.fixtures
import data.gatehouse.http

request(changes) := fixtures.patch(fixtures.http_input, {"request": changes})

allowed(doc) if {
	http.allow with input as doc with data.http as fixtures.http
	count(http.deny) == 0 with input as doc with data.http as fixtures.http
}

reasons(doc) := r if {
	r := http.deny with input as doc with data.http as fixtures.http
}

test_shipped_data_allows_no_request if {
	not http.allow with input as fixtures.http_input
}

test_https_to_allowed_domain_with_public_address_is_allowed if {
	allowed(fixtures.http_input)
	allowed(request({"resolved_ips": ["2606:4700:4700::1111"]}))
}

test_plain_http_is_denied if {
	doc := request({"scheme": "http", "port": 80})
	not allowed(doc)
	"request to api.example.com uses \"http\": only https allowed (http.allowed_schemes)" in reasons(doc)
}

test_allowed_schemes_can_admit_plain_http if {
	doc := request({"scheme": "http", "port": 80})
	data_http := object.union(fixtures.http, {"allowed_schemes": ["http", "https"]})
	http.allow with input as doc with data.http as data_http
	count(http.deny) == 0 with input as doc with data.http as data_http
}

test_numeric_host_spellings_are_not_allowed_domains if {
	every host in ["2130706433", "0x7f000001", "127.1", "localhost"] {
		not allowed(request({"host": host, "resolved_ips": ["127.0.0.1"]}))
	}
}

test_other_domain_is_denied if {
	doc := request({"host": "evil.example"})
	not allowed(doc)
	"host \"evil.example\" is not in http.allowed_domains" in reasons(doc)
}

test_private_loopback_and_metadata_addresses_are_denied if {
	every ip in ["10.1.2.3", "127.0.0.1", "169.254.169.254", "192.168.1.1", "172.20.0.5", "100.100.100.200", "::1", "fe80::1", "fd00:ec2::254", "::ffff:127.0.0.1", "0.0.0.0"] {
		not allowed(request({"resolved_ips": ["93.184.215.14", ip]}))
	}
}

test_blocked_address_reason_names_the_range if {
	doc := request({"resolved_ips": ["169.254.169.254"]})
	"host \"api.example.com\" resolves to 169.254.169.254, inside blocked range 169.254.0.0/16 (set http.allow_private to permit)" in reasons(doc)
}

test_allow_private_lets_internal_addresses_through if {
	doc := request({"resolved_ips": ["10.1.2.3"]})
	http.allow with input as doc with data.http as object.union(fixtures.http, {"allow_private": true})
	count(http.deny) == 0 with input as doc with data.http as object.union(fixtures.http, {"allow_private": true})
}

test_unresolved_host_is_denied if {
	doc := request({"resolved_ips": []})
	not allowed(doc)
	"host \"api.example.com\" has no resolved addresses to check" in reasons(doc)
}
