package gatehouse.list_test

import data.fixtures
import data.gatehouse.list

# The list package in a configured deployment (fixtures' data).
shown(doc) if {
	list.allow with input as doc
		with data.principals as fixtures.principals
		with data.components as fixtures.components
}

reasons(doc) := r if {
	r := list.deny with input as doc
		with data.principals as fixtures.principals
		with data.components as fixtures.components
}

test_shipped_data_shows_nothing if {
	not list.allow with input as fixtures.list_input
}

test_permitted_tool_is_shown if {
	shown(fixtures.list_input)
	count(reasons(fixtures.list_input)) == 0
}

test_tool_outside_the_patterns_is_hidden if {
	doc := fixtures.patch(fixtures.list_input, {"tool": {"name": "shell_exec"}})
	not shown(doc)
	"principal \"alice\" may not call tool \"shell_exec\"" in reasons(doc)
}

test_unpinned_component_is_hidden_unless_dev_mode if {
	doc := fixtures.patch(fixtures.list_input, {"tool": {"component": {"digest": "sha256:2222"}}})
	not shown(doc)
	shown(doc) with data.settings.mode as "dev"
}

test_unauthenticated_named_principal_sees_nothing if {
	not shown(fixtures.patch(fixtures.list_input, {"caller": {"authenticated": false}}))
}
