# Phase "socket": each socket a running tool opens (wired by a later task).
#
# The default bundle allows none: tools reach the network through HTTP, which the http phase
# checks host by host. Add rules here only for a tool that truly needs raw sockets.
package gatehouse.socket

default allow := false

deny contains "raw sockets are not allowed by this bundle"
