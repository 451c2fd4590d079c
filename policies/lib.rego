# Functions shared by the phase packages (paths, URLs, JSON pointers). They live outside
# `gatehouse.` because every package under `gatehouse.` must be a phase. Keep this package to
# functions and constants: referencing it must not make every phase evaluate rules it does not
# need (caller and tool checks live in lib.access).
package lib

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

# URL schemes tools may use (http.allowed_schemes, https only unless the data says otherwise).
allowed_schemes := object.get(data.http, "allowed_schemes", ["https"])

# The host of a URL whose scheme is allowed (an IPv6 literal without its brackets); undefined
# for anything else, including URLs with credentials (`https://allowed.example@evil.example/`),
# which are a classic allowlist bypass.
url_host(url) := host if {
	is_string(url)
	parts := regex.find_all_string_submatch_n(`^([a-z]+)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]+)?([/?#].*)?$`, url, 1)
	count(parts) == 1
	parts[0][1] in allowed_schemes
	host := trim_suffix(trim_prefix(parts[0][2], "["), "]")
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

# For a path already cleaned (see clean_path).
cleaned_allowed(cleaned) if {
	some prefix in data.fs.allowed_prefixes
	cleaned_under(cleaned, clean_path(prefix))
}

cleaned_writable(cleaned) if {
	some prefix in data.fs.writable
	cleaned_under(cleaned, clean_path(prefix))
}

# --- JSON pointers -----------------------------------------------------------------------

# RFC 6901: "~" and "/" inside a key are escaped.
pointer_token(key) := replace(replace(key, "~", "~0"), "/", "~1")

# The JSON pointer of a `walk` path: ["a", 0, "b/c"] becomes "/a/0/b~1c".
json_pointer(path) := concat("", [sprintf("/%s", [pointer_token(sprintf("%v", [k]))]) | some k in path])
