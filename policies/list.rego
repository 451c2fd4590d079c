# Phase "list": which tools a caller sees in tools/list.
#
# Mirrors the call phase's allowlist (principal → tool patterns, pinned component digests), so
# an agent is only shown tools it could call. Arguments do not exist yet, so no argument rules.
package gatehouse.list

import data.lib.access

default allow := false

allow if access.granted

deny contains msg if some msg in access.denials
