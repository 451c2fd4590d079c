# Phase "result": the result of a call, before it goes back to the agent.
#
# Deny by default; a result passes when it fits in limits.max_result_bytes. Values under keys
# named like secrets (redact.argument_names) are masked in the audit log.
package gatehouse.result

import data.lib

default allow := false

allow if {
	is_number(input.result.size)
	input.result.size <= data.limits.max_result_bytes
}

deny contains msg if {
	is_number(input.result.size)
	input.result.size > data.limits.max_result_bytes
	msg := sprintf("result of %v bytes exceeds limits.max_result_bytes (%v)", [input.result.size, data.limits.max_result_bytes])
}

deny contains msg if {
	not is_number(input.result.size)
	msg := "input.result.size is missing"
}

redact contains pointer if {
	some [path, _] in input.nodes.result
	name := path[count(path) - 1]
	is_string(name)
	lower(name) in data.redact.argument_names
	pointer := concat("", ["/result/value", lib.json_pointer(path)])
}
