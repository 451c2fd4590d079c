# Phase "fs": each filesystem operation a running tool makes.
#
# Deny by default. Reads are allowed under fs.allowed_prefixes, writes only under the
# prefixes listed in fs.writable as well. Paths are compared after resolving "." and "..".
package gatehouse.fs

import data.lib

default allow := false

allow if {
	input.fs.access == "read"
	lib.path_allowed(input.fs.path)
}

allow if {
	input.fs.access == "write"
	lib.path_allowed(input.fs.path)
	lib.path_writable(input.fs.path)
}

deny contains msg if {
	not input.fs.access in {"read", "write"}
	msg := sprintf("fs access %v is neither \"read\" nor \"write\"", [input.fs.access])
}

deny contains msg if {
	not lib.clean_path(input.fs.path)
	msg := sprintf("path %v must be absolute with at most %d segments", [input.fs.path, lib.max_path_segments])
}

deny contains msg if {
	lib.clean_path(input.fs.path)
	not lib.path_allowed(input.fs.path)
	msg := sprintf("path %q is outside fs.allowed_prefixes", [lib.clean_path(input.fs.path)])
}

deny contains msg if {
	input.fs.access == "write"
	lib.path_allowed(input.fs.path)
	not lib.path_writable(input.fs.path)
	msg := sprintf("path %q is not under a writable prefix (fs.writable)", [lib.clean_path(input.fs.path)])
}
