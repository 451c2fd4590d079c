package gatehouse.call_test

import data.fixtures
import data.gatehouse.call

# The call package's decision for `doc` in a configured deployment (fixtures' data).
decide(doc) := d if {
	d := {"allow": call.allow, "deny": call.deny, "limits": call.limits, "redact": call.redact}
		with input as doc
		with data.principals as fixtures.principals
		with data.components as fixtures.components
		with data.http as fixtures.http
		with data.fs as fixtures.fs
}

allowed(doc) if {
	d := decide(doc)
	d.allow
	count(d.deny) == 0
}

with_arguments(arguments) := fixtures.as_served(fixtures.patch(fixtures.call_input, {"arguments": arguments}))

denied_with(doc, msg) if msg in decide(doc).deny

# --- deny by default ---------------------------------------------------------------------

test_shipped_data_allows_nothing if {
	not call.allow with input as fixtures.call_input
	"principal \"alice\" may not call tool \"files_read_file\"" in call.deny with input as fixtures.call_input
}

test_permitted_tool_with_pinned_digest_is_allowed if {
	allowed(fixtures.call_input)
}

test_tool_outside_the_principals_patterns_is_denied if {
	doc := fixtures.patch(fixtures.call_input, {"tool": {"name": "shell_exec"}})
	not allowed(doc)
	denied_with(doc, "principal \"alice\" may not call tool \"shell_exec\"")
}

test_unknown_principal_is_denied if {
	doc := fixtures.patch(fixtures.call_input, {"caller": {"principal": "mallory"}})
	not allowed(doc)
	denied_with(doc, "principal \"mallory\" may not call tool \"files_read_file\"")
}

test_named_principal_must_be_authenticated if {
	doc := fixtures.patch(fixtures.call_input, {"caller": {"authenticated": false}})
	not allowed(doc)
	denied_with(doc, "principal \"alice\" is not authenticated")
}

test_anonymous_gets_only_what_is_listed_for_it if {
	doc := fixtures.patch(fixtures.call_input, {"caller": {"principal": "anonymous", "authenticated": false}})
	not allowed(doc)
	call.allow with input as doc
		with data.principals as {"anonymous": {"tools": ["files_read_file"]}}
		with data.components as fixtures.components
}

test_unpinned_digest_is_denied_in_enforce_mode if {
	doc := fixtures.patch(fixtures.call_input, {"tool": {"component": {"digest": "sha256:2222"}}})
	not allowed(doc)
	denied_with(doc, "component \"files\" (digest sha256:2222) is not in components.allowed_digests")
}

test_dev_mode_accepts_any_digest if {
	doc := fixtures.patch(fixtures.call_input, {"tool": {"component": {"digest": "sha256:2222"}}})
	allowed(doc) with data.settings.mode as "dev"
}

test_unknown_mode_denies_everything if {
	not allowed(fixtures.call_input) with data.settings.mode as "develop"
	denied_with(fixtures.call_input, "settings.mode develop is not one of \"enforce\", \"dev\"") with data.settings.mode as "develop"
}

# --- url arguments -----------------------------------------------------------------------

test_https_url_to_allowed_domain_or_subdomain_passes if {
	allowed(with_arguments({"url": "https://example.com/"}))
	allowed(with_arguments({"url": "https://api.example.com:8443/v1?q=1"}))
}

test_plain_http_url_is_denied if {
	doc := with_arguments({"url": "http://example.com/"})
	not allowed(doc)
	denied_with(doc, "argument /arguments/url must be a https URL without credentials")
}

test_allowed_schemes_and_ipv6_literals_are_understood if {
	doc := with_arguments({"url": "http://[::1]:8080/x"})
	d := {"allow": call.allow, "deny": call.deny}
		with input as doc
		with data.principals as fixtures.principals
		with data.components as fixtures.components
		with data.http as {"allowed_domains": ["::1"], "allowed_schemes": ["http"]}
		with data.fs as fixtures.fs
	d.allow
	count(d.deny) == 0
}

test_one_bad_url_is_reported_alone if {
	# A bad URL nested beside a good one: the good one passes its checks, the bad one is
	# reported once, and the evaluation does not fail (a failure would lose the redaction).
	doc := with_arguments({"url": "https://example.com/", "password": {"value": "x", "url": "ftp://x/"}})
	reasons := decide(doc).deny
	reasons == {"argument /arguments/password/url must be a https URL without credentials"}
	"/arguments/password" in decide(doc).redact
}

test_a_denied_url_is_never_quoted if {
	# The reason goes to the agent, the log and the audit entry: it names the argument, not
	# the password in it.
	doc := with_arguments({"url": "https://alice:Hunter2SECRET@example.com/"})
	not allowed(doc)
	every reason in decide(doc).deny {
		not contains(reason, "Hunter2SECRET")
	}
	denied_with(doc, "argument /arguments/url must be a https URL without credentials")
}

test_url_with_credentials_is_denied if {
	not allowed(with_arguments({"url": "https://example.com@evil.example/"}))
}

test_url_to_other_or_lookalike_domain_is_denied if {
	denied_with(with_arguments({"url": "https://evil.example/"}), "argument /arguments/url: domain \"evil.example\" is not in http.allowed_domains")
	not allowed(with_arguments({"url": "https://evilexample.com/"}))
}

test_nested_url_is_checked_too if {
	doc := with_arguments({"request": {"url": "https://evil.example/"}})
	denied_with(doc, "argument /arguments/request/url: domain \"evil.example\" is not in http.allowed_domains")
}

test_url_must_be_a_string if {
	denied_with(with_arguments({"url": ["https://example.com/"]}), "argument /arguments/url must be a URL string")
}

# --- path arguments ----------------------------------------------------------------------

test_path_under_an_allowed_prefix_passes if {
	allowed(with_arguments({"path": "/data/reports/q3.csv"}))
	allowed(with_arguments({"path": "/data/a/../b.csv"}))
}

test_dotdot_escape_is_denied if {
	doc := with_arguments({"path": "/data/../etc/passwd"})
	not allowed(doc)
	denied_with(doc, "argument /arguments/path: path \"/etc/passwd\" is outside fs.allowed_prefixes")
}

test_sibling_directory_with_same_prefix_is_denied if {
	not allowed(with_arguments({"path": "/database/dump.sql"}))
}

test_relative_path_is_denied if {
	denied_with(with_arguments({"path": "data/x"}), "argument /arguments/path must be an absolute path of at most 64 segments")
}

test_path_must_be_a_string if {
	denied_with(with_arguments({"path": 7}), "argument /arguments/path must be a path string")
}

# --- size arguments ----------------------------------------------------------------------

test_size_within_max_size_passes if {
	allowed(with_arguments({"size": 10485760, "bytes": 1, "megabytes": 10}))
}

test_size_over_max_size_is_denied if {
	denied_with(with_arguments({"size": 10485761}), "argument /arguments/size = 10485761 exceeds limits.max_size (10485760 bytes)")
}

test_megabytes_are_counted_in_mebibytes if {
	not allowed(with_arguments({"megabytes": 11}))
}

test_negative_or_non_numeric_size_is_denied if {
	denied_with(with_arguments({"bytes": -1}), "argument /arguments/bytes must not be negative")
	denied_with(with_arguments({"size": "big"}), "argument /arguments/size must be a number")
}

# --- obligations -------------------------------------------------------------------------

test_default_limits_come_from_data if {
	decide(fixtures.call_input).limits == data.limits.defaults
}

test_principal_limits_override_the_defaults if {
	doc := fixtures.patch(fixtures.call_input, {"caller": {"principal": "bob"}})
	limits := decide(doc).limits
	limits.timeout_ms == 1000
	limits.memory_bytes == data.limits.defaults.memory_bytes
}

test_secret_arguments_are_redacted if {
	doc := with_arguments({"token": "t", "options": {"Password": "p"}, "name": "x"})
	decide(doc).redact == {"/arguments/token", "/arguments/options/Password"}
}

# --- environment -------------------------------------------------------------------------

test_env_grants_follow_the_principal if {
	principals := object.union(fixtures.principals, {"alice": object.union(fixtures.principals.alice, {"env": ["WEATHER_API_KEY"]})})
	granted := call.env with input as fixtures.call_input with data.principals as principals with data.components as fixtures.components
	granted == {"WEATHER_API_KEY"}
	count(call.env) == 0 with input as fixtures.call_input with data.principals as fixtures.principals with data.components as fixtures.components
}

# --- input.nodes -------------------------------------------------------------------------

test_input_without_argument_nodes_is_denied if {
	doc := object.remove(with_arguments({"url": "https://evil.example/"}), ["nodes"])
	not allowed(doc)
	denied_with(doc, "input.nodes.arguments is missing (the gateway derives it from input.arguments)")
}

# --- a person in the loop ----------------------------------------------------------------

test_no_call_asks_with_the_shipped_data if {
	count(call.ask) == 0 with input as fixtures.call_input with data.principals as fixtures.principals
}

test_a_tool_in_approval_tools_asks_a_person if {
	asks := call.ask with input as fixtures.call_input
		with data.principals as fixtures.principals
		with data.components as fixtures.components
		with data.approval as {"tools": ["files_*"]}
	asks == {"calls of files_read_file need a person's approval (approval.tools)"}
}

test_a_denied_call_is_not_asked_about_because_deny_comes_first if {
	# The gateway's precedence: a deny message denies, whatever `ask` says.
	doc := fixtures.patch(fixtures.call_input, {"tool": {"name": "files_delete"}})
	count(call.ask) == 1 with input as doc with data.approval as {"tools": ["files_*"]} with data.principals as {"alice": {"tools": ["files_read*"]}}
	count(call.deny) > 0 with input as doc with data.approval as {"tools": ["files_*"]} with data.principals as {"alice": {"tools": ["files_read*"]}}
}
