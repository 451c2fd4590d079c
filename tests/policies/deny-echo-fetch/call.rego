# Every tool but echo_fetch, which is denied with a reason the tests look for.
package gatehouse.call

default allow := false

allow if input.tool.name != "echo_fetch"

deny contains "echo_fetch is not for anyone" if input.tool.name == "echo_fetch"
