# Phase "list": which tools a caller sees in tools/list.
#
# Mirrors the call phase's allowlist (principal → tool patterns, pinned component digests), so
# an agent is only shown tools it could call. Arguments do not exist yet, so no argument rules.
package gatehouse.list

import data.lib

default allow := false

allow if lib.access_granted

deny contains msg if some msg in lib.access_denials
