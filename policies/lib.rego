# Helpers shared by the phase packages. They live outside `gatehouse.` because every package
# under `gatehouse.` must be a phase.
package lib

# The settings a bundle can run in. Anything else is a typo, and a typo must not relax anything.
modes := {"enforce", "dev"}

mode_valid if data.settings.mode in modes

dev_mode if data.settings.mode == "dev"

principal := input.caller.principal

# A named principal must have been authenticated by the gateway; only "anonymous" may be
# unauthenticated (and gets nothing unless `principals.anonymous` says so).
caller_verified if principal == "anonymous"

caller_verified if {
	principal != "anonymous"
	input.caller.authenticated == true
}

# The caller may use this tool when one of its patterns (globs over tool names) matches.
tool_permitted if {
	caller_verified
	some pattern in data.principals[principal].tools
	glob.match(pattern, [], input.tool.name)
}

# Components run only when their digest is pinned, except in dev mode where any build goes.
component_trusted if dev_mode

component_trusted if input.tool.component.digest in data.components.allowed_digests

# Everything the list and call phases require of caller, tool and component.
access_granted if {
	mode_valid
	tool_permitted
	component_trusted
}

# Why access is not granted, one message per failed requirement.
access_denials contains msg if {
	not mode_valid
	msg := sprintf("settings.mode %v is not one of \"enforce\", \"dev\"", [data.settings.mode])
}

access_denials contains msg if {
	not caller_verified
	msg := sprintf("principal %q is not authenticated", [principal])
}

access_denials contains msg if {
	caller_verified
	not tool_permitted
	msg := sprintf("principal %q may not call tool %q", [principal, input.tool.name])
}

access_denials contains msg if {
	not component_trusted
	msg := sprintf(
		"component %q (digest %v) is not in components.allowed_digests",
		[input.tool.component.name, input.tool.component.digest],
	)
}

# --- domains -----------------------------------------------------------------------------

# `host` is one of the allowed domains or a subdomain of one.
domain_allowed(host) if {
	some domain in data.http.allowed_domains
	lower(host) == lower(domain)
}

domain_allowed(host) if {
	some domain in data.http.allowed_domains
	endswith(lower(host), concat("", [".", lower(domain)]))
}

# The host of an https URL; undefined for anything else, including URLs with credentials
# (`https://allowed.example@evil.example/`), which are a classic allowlist bypass.
https_host(url) := host if {
	is_string(url)
	regex.match(`^https://[A-Za-z0-9.-]+(:[0-9]+)?([/?#].*)?$`, url)
	host := regex.replace(url, `^https://([A-Za-z0-9.-]+)(:[0-9]+)?([/?#].*)?$`, "$1")
}

# --- paths -------------------------------------------------------------------------------

# Paths with more segments than this are refused rather than normalized (resolving ".." is
# quadratic in the number of segments).
max_path_segments := 64

# An absolute path that is already clean: no empty, "." or ".." segment.
clean_pattern := `^/$|^(/([^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+))+$`

# `p` with "." and ".." resolved, like a lexical path.Clean of an absolute path: "/a/b/../c"
# becomes "/a/c", and ".." never climbs above "/". Undefined for relative or overlong paths.
# Most paths are already clean and cost one regex match.
clean_path(p) := p if {
	is_string(p)
	regex.match(clean_pattern, p)
	count(split(p, "/")) <= max_path_segments + 1
}

clean_path(p) := cleaned if {
	is_string(p)
	startswith(p, "/")
	not regex.match(clean_pattern, p)
	names := [s | some s in split(p, "/"); s != ""; s != "."]
	count(names) <= max_path_segments
	depths := [depth(array.slice(names, 0, k)) | some k in numbers.range(0, count(names))]
	kept := [s | some i, s in names; s != ".."; not popped(depths, i)]
	cleaned := concat("", ["/", concat("/", kept)])
}

# Names minus ".." in a run of segments: how deep the run leaves you (may go below zero).
depth(segments) := count([s | some s in segments; s != ".."]) - count([s | some s in segments; s == ".."])

# The name at index i sits at depth depths[i + 1]; a later ".." removes it as soon as the
# running depth drops below that. Clamping at "/" before i does not change the comparison.
popped(depths, i) if {
	some k, d in depths
	k > i + 1
	d < depths[i + 1]
}

# A cleaned path lies under (or is) a cleaned base directory: whole segments only, so
# "/database" is not under "/data".
cleaned_under(_, "/") := true

cleaned_under(cleaned, base) if cleaned == base

cleaned_under(cleaned, base) if startswith(cleaned, concat("", [base, "/"]))

# `p` lies under (or is) `prefix`, both compared after cleaning so ".." cannot escape.
path_under(p, prefix) := cleaned_under(clean_path(p), clean_path(prefix))

# For a path already cleaned (see clean_path). These are functions, not rules: referencing
# anything in this package makes regorus evaluate all of its rules, so rules here are kept to
# what every call needs.
cleaned_allowed(cleaned) if {
	some prefix in data.fs.allowed_prefixes
	cleaned_under(cleaned, clean_path(prefix))
}

cleaned_writable(cleaned) if {
	some prefix in data.fs.writable
	cleaned_under(cleaned, clean_path(prefix))
}

path_allowed(p) := cleaned_allowed(clean_path(p))

path_writable(p) := cleaned_writable(clean_path(p))

# --- JSON pointers -----------------------------------------------------------------------

# RFC 6901: "~" and "/" inside a key are escaped.
pointer_token(key) := replace(replace(key, "~", "~0"), "/", "~1")

# The JSON pointer of a `walk` path: ["a", 0, "b/c"] becomes "/a/0/b~1c".
json_pointer(path) := concat("", [sprintf("/%s", [pointer_token(sprintf("%v", [k]))]) | some k in path])
