package gatehouse.config_test

import data.fixtures
import data.gatehouse.config

read(changes) := fixtures.patch(fixtures.config_input, {"config": changes})

withheld := {"withheld": {"files": ["region"], "*": ["build"]}}

test_shipped_data_allows_reading_a_setting if {
	config.allow with input as fixtures.config_input
	config.allow with input as read({"operation": "get-all", "key": null})
}

test_an_absent_key_reads_as_none_and_is_allowed if {
	config.allow with input as read({"key": "colour", "present": false})
}

test_a_withheld_key_is_denied_with_a_reason if {
	doc := read({"key": "region"})
	not config.allow with input as doc with data.config as withheld
	reasons := config.deny with input as doc with data.config as withheld
	"setting \"region\" of component \"files\" is withheld (config.withheld)" in reasons
	not config.allow with input as read({"key": "build"}) with data.config as withheld
	config.allow with input as fixtures.config_input with data.config as withheld
}

test_get_all_is_denied_while_a_key_of_the_component_is_withheld if {
	doc := read({"operation": "get-all", "key": null, "keys": ["greeting", "region"]})
	not config.allow with input as doc with data.config as withheld
	reasons := config.deny with input as doc with data.config as withheld
	"get-all would reveal withheld settings [\"region\"] of component \"files\" (config.withheld)" in reasons
	config.allow with input as read({"operation": "get-all", "key": null, "keys": ["greeting"]}) with data.config as withheld
}

test_an_unknown_operation_is_denied if {
	not config.allow with input as read({"operation": "set"})
}
