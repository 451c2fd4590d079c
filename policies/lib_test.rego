package lib_test

import data.lib
import data.lib.access

test_clean_path_resolves_dot_and_dotdot if {
	lib.clean_path("/a/b/../c") == "/a/c"
	lib.clean_path("/a/./b//c/") == "/a/b/c"
	lib.clean_path("/a/b/../../..") == "/"
	lib.clean_path("/../../etc/passwd") == "/etc/passwd"
	lib.clean_path("/data/x/../../etc") == "/etc"
	lib.clean_path("/") == "/"
}

test_clean_path_refuses_relative_and_overlong_paths if {
	not lib.clean_path("data/x")
	not lib.clean_path("")
	not lib.clean_path(concat("", ["/", concat("/", [sprintf("s%d", [i]) | some i in numbers.range(1, 65)])]))
	lib.clean_path(concat("", ["/", concat("/", [sprintf("s%d", [i]) | some i in numbers.range(1, 64)])]))
}

test_path_under_compares_whole_segments if {
	lib.path_under("/data", "/data")
	lib.path_under("/data/a/b", "/data/")
	lib.path_under("/data/a/../b", "/data")
	not lib.path_under("/database/x", "/data")
	not lib.path_under("/data/../etc", "/data")
	lib.path_under("/anything", "/")
}

test_url_host_accepts_only_urls_of_allowed_schemes if {
	lib.url_host("https://example.com") == "example.com"
	lib.url_host("https://api.example.com:8443/v1?q=1") == "api.example.com"
	lib.url_host("https://[2001:db8::1]:8443/") == "2001:db8::1"
	not lib.url_host("http://example.com/")
	not lib.url_host("https://example.com@evil.example/")
	not lib.url_host("https://user:pw@example.com/")
	not lib.url_host("ftp://example.com/")
	not lib.url_host(" https://example.com/")
	lib.url_host("http://example.com/") == "example.com" with data.http.allowed_schemes as ["http", "https"]
}

test_domain_allowed_matches_domain_and_subdomains_only if {
	lib.domain_allowed("example.com") with data.http.allowed_domains as ["example.com"]
	lib.domain_allowed("API.Example.com") with data.http.allowed_domains as ["example.com"]
	not lib.domain_allowed("evilexample.com") with data.http.allowed_domains as ["example.com"]
	not lib.domain_allowed("example.com.evil.net") with data.http.allowed_domains as ["example.com"]
}

test_json_pointer_escapes_keys if {
	lib.json_pointer(["a", 0, "b/c", "d~e"]) == "/a/0/b~1c/d~0e"
}

test_unknown_mode_is_invalid if {
	access.mode_valid with data.settings.mode as "dev"
	not access.mode_valid with data.settings.mode as "develop"
}
