# Phase "call": may this caller run this tool with these arguments, and under which limits?
#
# Deny by default. A call is allowed only when the caller's principal lists the tool and the
# component's digest is pinned; `deny` then vetoes calls whose arguments break a constraint.
package gatehouse.call

import data.lib
import data.lib.access

default allow := false

allow if access.granted

# Who may call what (shared with the list phase).
deny contains msg if some msg in access.denials

# A person approves each call of the tools in approval.tools (glob patterns): the gateway asks
# the person behind the MCP client (or an operator), and the call waits for the answer. `deny`
# still comes first: a call the rules refuse is never put to anyone.
ask contains msg if {
	some pattern in object.get(data.approval, "tools", [])
	glob.match(pattern, [], input.tool.name)
	msg := sprintf("calls of %v need a person's approval (approval.tools)", [input.tool.name])
}

# --- argument constraints ----------------------------------------------------------------
# Arguments are matched by name at any depth (`{"url": …}` and `{"req": {"url": …}}`), so
# nesting an argument does not get it past the check. Messages name an argument by its JSON
# pointer and never quote what the caller sent: a reason goes to the agent, the log and the
# audit entry, and an argument may carry a secret (a URL's password, a token) no rule masks.

# Every argument as [path, name, value]: `path` is the walk path (its JSON pointer is only
# built for messages), `name` its last key. The gateway lists the nodes of the arguments in
# `input.nodes.arguments` (what `walk(input.arguments, …)` yields), which regorus's compiled
# evaluator can iterate and `walk` it cannot.
arguments := [[path, name, value] |
	some [path, value] in input.nodes.arguments
	name := path[count(path) - 1]
]

# Without the listing no argument could be checked: deny rather than skip the checks.
deny contains "input.nodes.arguments is missing (the gateway derives it from input.arguments)" if {
	not is_array(input.nodes.arguments)
}

pointer(path) := concat("", ["/arguments", lib.json_pointer(path)])

# A URL argument must use an allowed scheme (https by default) and go to an allowed domain.
url_arguments := [[path, value] | some [path, name, value] in arguments; name == "url"]

# The host of each URL argument that has one. Each key is defined or absent: a value that is
# only a function call would make the whole object undefined (or an error) when one call is
# undefined, and one bad URL would then be reported for every URL argument.
url_host[i] := host if {
	some i, [_, value] in url_arguments
	host := lib.url_host(value)
}

deny contains msg if {
	some [path, value] in url_arguments
	not is_string(value)
	msg := sprintf("argument %s must be a URL string", [pointer(path)])
}

deny contains msg if {
	some i, [path, value] in url_arguments
	is_string(value)
	not url_host[i]
	msg := sprintf("argument %s must be a %s URL without credentials", [pointer(path), concat(" or ", lib.allowed_schemes)])
}

deny contains msg if {
	some i, [path, _] in url_arguments
	host := url_host[i]
	not lib.domain_allowed(host)
	msg := sprintf("argument %s: domain %q is not in http.allowed_domains", [pointer(path), host])
}

# A path argument must stay under an allowed prefix once "." and ".." are resolved.
path_arguments := [[path, value] | some [path, name, value] in arguments; name == "path"]

# The cleaned form of each path argument that has one (defined or absent per key, as above).
clean_path_argument[i] := cleaned if {
	some i, [_, value] in path_arguments
	cleaned := lib.clean_path(value)
}

deny contains msg if {
	some [path, value] in path_arguments
	not is_string(value)
	msg := sprintf("argument %s must be a path string", [pointer(path)])
}

deny contains msg if {
	some i, [path, value] in path_arguments
	is_string(value)
	not clean_path_argument[i]
	msg := sprintf("argument %s must be an absolute path of at most %d segments", [pointer(path), lib.max_path_segments])
}

deny contains msg if {
	some i, [path, _] in path_arguments
	cleaned := clean_path_argument[i]
	not lib.cleaned_allowed(cleaned)
	msg := sprintf("argument %s: path %q is outside fs.allowed_prefixes", [pointer(path), cleaned])
}

# A size argument may not exceed limits.max_size bytes; `megabytes` counts in MiB.
size_factor := {"size": 1, "bytes": 1, "megabytes": 1048576}

deny contains msg if {
	some [path, name, value] in arguments
	size_factor[name]
	not is_number(value)
	msg := sprintf("argument %s must be a number", [pointer(path)])
}

deny contains msg if {
	some [path, name, value] in arguments
	factor := size_factor[name]
	is_number(value)
	value * factor > data.limits.max_size
	msg := sprintf("argument %s = %v exceeds limits.max_size (%v bytes)", [pointer(path), value, data.limits.max_size])
}

deny contains msg if {
	some [path, name, value] in arguments
	size_factor[name]
	is_number(value)
	value < 0
	msg := sprintf("argument %s must not be negative", [pointer(path)])
}

# --- obligations -------------------------------------------------------------------------

# Default limits from data, overridden per principal by `principals.<name>.limits`.
principal_limits := object.get(data.principals, [access.principal, "limits"], {})

limits := object.union(data.limits.defaults, principal_limits)

# Secrets in arguments are masked in the audit log.
redact contains pointer(path) if {
	some [path, name, _] in arguments
	is_string(name)
	lower(name) in data.redact.argument_names
}

# --- environment ---------------------------------------------------------------------------
# Environment variables (defined in the gateway's [env] table) a principal's tools get, e.g.
# {"principals": {"alice": {"tools": ["weather_*"], "env": ["WEATHER_API_KEY"]}}}.
env contains name if {
	access.granted
	some name in object.get(data.principals[input.caller.principal], "env", [])
}
