# Who may use which tool: shared by the list and call phases. A package of its own because
# referencing one rule of a package makes regorus evaluate all of that package's rules, and
# the http and fs phases need none of these.
package lib.access

# The settings a bundle can run in. Anything else is a typo, and a typo must not relax anything.
modes := {"enforce", "dev"}

mode_valid if data.settings.mode in modes

dev_mode if data.settings.mode == "dev"

principal := input.caller.principal

# A named principal must have been authenticated by the gateway; only "anonymous" may be
# unauthenticated (and gets nothing unless `principals.anonymous` says so).
caller_verified if principal == "anonymous"

caller_verified if {
	principal != "anonymous"
	input.caller.authenticated == true
}

# The caller may use this tool when one of its patterns (globs over tool names) matches.
tool_permitted if {
	caller_verified
	some pattern in data.principals[principal].tools
	glob.match(pattern, [], input.tool.name)
}

# A caller authenticated by a JWT may also use the tools its token's claims grant: each group
# in its `groups` claim and each scope in its `scope` claim (space-separated, OAuth 2.0) or
# `scp` claim (an array) names patterns in `claim_grants`, e.g.
# {"claim_grants": {"groups": {"analysts": {"tools": ["files_read*"]}}}}. Claims are trusted
# only because the gateway verified the token's signature, issuer and audience.
tool_permitted if {
	caller_verified
	some pattern in claim_patterns
	glob.match(pattern, [], input.tool.name)
}

jwt_claims := input.caller.claims if {
	input.caller.auth == "jwt"
	input.caller.authenticated == true
}

claim_patterns contains pattern if {
	groups := object.get(jwt_claims, "groups", [])
	is_array(groups)
	some group in groups
	some pattern in data.claim_grants.groups[group].tools
}

claim_patterns contains pattern if {
	some scope in scopes
	some pattern in data.claim_grants.scopes[scope].tools
}

scopes contains scope if {
	value := object.get(jwt_claims, "scope", "")
	is_string(value)
	some scope in split(value, " ")
	scope != ""
}

scopes contains scope if {
	value := object.get(jwt_claims, "scp", [])
	is_array(value)
	some scope in value
}

# Components run only when their digest is pinned, except in dev mode where any build goes.
component_trusted if dev_mode

component_trusted if input.tool.component.digest in data.components.allowed_digests

# Everything the list and call phases require of caller, tool and component.
granted if {
	mode_valid
	tool_permitted
	component_trusted
}

# Why access is not granted, one message per failed requirement.
denials contains msg if {
	not mode_valid
	msg := sprintf("settings.mode %v is not one of \"enforce\", \"dev\"", [data.settings.mode])
}

denials contains msg if {
	not caller_verified
	msg := sprintf("principal %q is not authenticated", [principal])
}

denials contains msg if {
	caller_verified
	not tool_permitted
	msg := sprintf("principal %q may not call tool %q", [principal, input.tool.name])
}

denials contains msg if {
	not component_trusted
	msg := sprintf(
		"component %q (digest %v) is not in components.allowed_digests",
		[input.tool.component.name, input.tool.component.digest],
	)
}
