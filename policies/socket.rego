# Phase "socket": each raw socket use of a running tool (wasi:sockets connect, bind, listen,
# accept, UDP send and receive), decided per address.
#
# Deny by default: tools reach the network through HTTP, which the http phase checks request
# by request. A tool that truly needs a raw socket gets exactly the addresses listed in
# data.socket.allowed, e.g. {"protocol": "tcp", "operation": "connect", "address": "10.0.0.5",
# "port": 5432}. Name lookup over wasi:sockets is always closed (see policies/README.md).
package gatehouse.socket

default allow := false

allowed_entries := object.get(data.socket, "allowed", [])

allow if {
	some entry in allowed_entries
	entry.protocol == input.socket.protocol
	entry.operation == input.socket.operation
	entry.address == input.socket.address
	entry.port == input.socket.port
}

deny contains msg if {
	not allow
	msg := sprintf("raw %v %v to %v port %v is not in socket.allowed", [input.socket.protocol, input.socket.operation, input.socket.address, input.socket.port])
}
