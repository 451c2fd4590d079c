# Phase "config": each read a running tool makes of its settings through wasi:config/store
# (`config = {…}` in its [[components]] entry of gatehouse.toml).
#
# The operator wrote these settings for this component, and they are not secret (secrets never
# go there), so a read is allowed unless data.config.withheld names the key for the component,
# e.g. {"files": ["region"]}, or for every component under "*". `get` of a key the component
# does not have is allowed: the answer is `none` and reveals nothing. `get-all` is denied while
# any of the component's keys (input.config.keys) is withheld, since it would reveal that key.
package gatehouse.config

default allow := false

withheld_for := array.concat(
	object.get(data.config, ["withheld", input.tool.component.name], []),
	object.get(data.config, ["withheld", "*"], []),
)

withheld(key) if key in withheld_for

allow if {
	input.config.operation == "get"
	is_string(input.tool.component.name)
	is_string(input.config.key)
	not withheld(input.config.key)
}

allow if {
	input.config.operation == "get-all"
	is_string(input.tool.component.name)
	count(withheld_keys) == 0
}

withheld_keys contains key if {
	some key in input.config.keys
	withheld(key)
}

deny contains msg if {
	input.config.operation == "get"
	withheld(input.config.key)
	msg := sprintf("setting %q of component %q is withheld (config.withheld)", [input.config.key, input.tool.component.name])
}

deny contains msg if {
	input.config.operation == "get-all"
	count(withheld_keys) > 0
	msg := sprintf("get-all would reveal withheld settings %v of component %q (config.withheld)", [sort(withheld_keys), input.tool.component.name])
}
