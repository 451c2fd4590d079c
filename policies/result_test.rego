package gatehouse.result_test

import data.fixtures
import data.gatehouse.result

result_with(changes) := fixtures.as_served(fixtures.patch(fixtures.result_input, {"result": changes}))

test_small_result_passes if {
	result.allow with input as fixtures.result_input
	count(result.deny) == 0 with input as fixtures.result_input
}

test_oversized_result_is_denied if {
	doc := result_with({"size": 1048577})
	not result.allow with input as doc
	"result of 1048577 bytes exceeds limits.max_result_bytes (1048576)" in result.deny with input as doc
}

test_result_without_size_is_denied if {
	doc := {"phase": "result", "result": {"ok": true, "value": 1}}
	not result.allow with input as doc
	"input.result.size is missing" in result.deny with input as doc
}

test_secrets_in_results_are_redacted if {
	doc := result_with({"value": {"user": "u", "session": {"Token": "abc"}, "items": [{"password": "p"}]}})
	result.redact == {"/result/value/session/Token", "/result/value/items/0/password"} with input as doc
}
