# A bundle for the tests of everything but policy (tool listing, value conversion, sandbox):
# every caller may see and call every tool. Never use it outside tests.
package gatehouse.call

allow := true
