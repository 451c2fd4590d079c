# Phase "fs": each filesystem operation a running tool makes.
#
# Deny by default. Reads are allowed under fs.allowed_prefixes, writes only under the
# prefixes listed in fs.writable as well. Paths are compared after resolving "." and "..".
# Paths are what the operation will touch: the gateway resolves symbolic links before it asks.
# An operation with a second path (`target`: the source of rename-at and link-at, what a
# symlink-at link points to) needs that path allowed too, and writable for a rename or a hard
# link (a hard link shares the file: writing the new name writes the source), so a tool cannot
# move, link or point a file out of reach into reach.
package gatehouse.fs

import data.lib

default allow := false

# The operation's path with "." and ".." resolved (undefined if relative or overlong).
cleaned := lib.clean_path(input.fs.path)

allow if {
	input.fs.access == "read"
	lib.cleaned_allowed(cleaned)
	target_ok
}

allow if {
	input.fs.access == "write"
	lib.cleaned_allowed(cleaned)
	lib.cleaned_writable(cleaned)
	target_ok
}

# The second path, if the operation has one.
target := lib.clean_path(input.fs.target)

target_ok if not input.fs.target

# Operations whose source must be writable, not only readable.
source_writable_operations := {"rename-at", "link-at"}

target_ok if {
	lib.cleaned_allowed(target)
	not input.fs.operation in source_writable_operations
}

target_ok if {
	lib.cleaned_allowed(target)
	input.fs.operation in source_writable_operations
	lib.cleaned_writable(target)
}

deny contains msg if {
	not input.fs.access in {"read", "write"}
	msg := sprintf("fs access %v is neither \"read\" nor \"write\"", [input.fs.access])
}

deny contains msg if {
	not cleaned
	msg := sprintf("path %v must be absolute with at most %d segments", [input.fs.path, lib.max_path_segments])
}

deny contains msg if {
	not lib.cleaned_allowed(cleaned)
	msg := sprintf("path %q is outside fs.allowed_prefixes", [cleaned])
}

deny contains msg if {
	input.fs.access == "write"
	lib.cleaned_allowed(cleaned)
	not lib.cleaned_writable(cleaned)
	msg := sprintf("path %q is not under a writable prefix (fs.writable)", [cleaned])
}

deny contains msg if {
	input.fs.target
	not lib.cleaned_allowed(target)
	msg := sprintf("%v target %v is outside fs.allowed_prefixes", [input.fs.operation, input.fs.target])
}

deny contains msg if {
	input.fs.operation in source_writable_operations
	lib.cleaned_allowed(target)
	not lib.cleaned_writable(target)
	msg := sprintf("%v source %q is not under a writable prefix (fs.writable)", [input.fs.operation, target])
}

# --- what the session remembers -------------------------------------------------------------
# A read under fs.sensitive_prefixes labels the caller's session "read_sensitive" (only when
# the read is allowed: a refused one read nothing). The http phase then keeps that session's
# requests to http.trusted_hosts, whatever tool makes them (policies/README.md, "Sessions").
sensitive_prefixes := object.get(data.fs, "sensitive_prefixes", [])

labels contains "read_sensitive" if {
	input.fs.access == "read"
	allow
	count(deny) == 0
	some prefix in sensitive_prefixes
	lib.cleaned_under(cleaned, lib.clean_path(prefix))
}
