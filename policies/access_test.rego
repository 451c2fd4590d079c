package lib.access_test

import data.fixtures
import data.gatehouse.call
import data.gatehouse.list

# Tools granted by a JWT's claims (`claim_grants`), not by the principal's name.
grants := {
	"groups": {"analysts": {"tools": ["files_read*"]}},
	"scopes": {"files:read": {"tools": ["files_read_file"]}},
}

jwt_caller(claims) := {
	"principal": "bob",
	"authenticated": true,
	"transport": "http",
	"client": null,
	"auth": "jwt",
	"claims": object.union({"sub": "bob"}, claims),
}

with_caller(c) := fixtures.patch(fixtures.call_input, {"caller": c})

allowed(doc) if {
	call.allow with input as fixtures.as_served(doc)
		with data.claim_grants as grants
		with data.components as fixtures.components
	count(call.deny) == 0 with input as fixtures.as_served(doc)
		with data.claim_grants as grants
		with data.components as fixtures.components
}

listed(doc) if {
	list.allow with input as doc
		with data.claim_grants as grants
		with data.components as fixtures.components
}

test_group_claim_grants_its_tools if {
	doc := with_caller(jwt_caller({"groups": ["staff", "analysts"]}))
	allowed(doc)
	listed(fixtures.patch(fixtures.list_input, {"caller": doc.caller}))
}

test_other_group_is_denied if {
	doc := with_caller(jwt_caller({"groups": ["staff"]}))
	not allowed(doc)
	"principal \"bob\" may not call tool \"files_read_file\"" in call.deny with input as fixtures.as_served(doc)
		with data.claim_grants as grants
		with data.components as fixtures.components
}

test_space_separated_scope_grants_its_tools if {
	allowed(with_caller(jwt_caller({"scope": "openid files:read"})))
}

test_scp_array_grants_its_tools if {
	allowed(with_caller(jwt_caller({"scp": ["files:read"]})))
}

test_scope_is_not_matched_as_a_substring if {
	not allowed(with_caller(jwt_caller({"scope": "files:read-all"})))
}

test_groups_not_an_array_grant_nothing if {
	not allowed(with_caller(jwt_caller({"groups": "analysts"})))
}

# Claims count only for a caller the gateway authenticated by a JWT.
test_claims_of_an_api_key_caller_grant_nothing if {
	c := object.union(jwt_caller({"groups": ["analysts"]}), {"auth": "api_key"})
	not allowed(with_caller(c))
}

test_claims_of_an_unauthenticated_caller_grant_nothing if {
	c := object.union(jwt_caller({"groups": ["analysts"]}), {"authenticated": false})
	not allowed(with_caller(c))
}

test_shipped_data_grants_nothing_by_claims if {
	doc := with_caller(jwt_caller({"groups": ["analysts"], "scope": "files:read"}))
	not call.allow with input as fixtures.as_served(doc) with data.components as fixtures.components
}
