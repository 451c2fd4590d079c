# Phase "socket": each raw socket use of a running tool (wasi:sockets connect, bind, listen,
# accept, UDP send and receive), decided per address.
#
# Deny by default: tools reach the network through HTTP, which the http phase checks request
# by request. A tool that truly needs a raw socket gets exactly the addresses listed in
# data.socket.allowed, e.g. {"protocol": "tcp", "operation": "connect", "address": "10.0.0.5",
# "port": 5432}, and only if the address is `global` or its class is listed in
# data.socket.allowed_classes (here ["private"]). The gateway classifies the address
# (input.socket.class): an IPv6 spelling of an IPv4 address (NAT64, 6to4, Teredo, …) has the
# class of the IPv4 address it embeds, so listing `64:ff9b::7f00:1` does not open loopback by
# accident. Name lookup over wasi:sockets is always closed (see policies/README.md).
package gatehouse.socket

default allow := false

allowed_entries := object.get(data.socket, "allowed", [])

allowed_classes := object.get(data.socket, "allowed_classes", [])

listed if {
	some entry in allowed_entries
	entry.protocol == input.socket.protocol
	entry.operation == input.socket.operation
	entry.address == input.socket.address
	entry.port == input.socket.port
}

class_permitted if input.socket.class == "global"

class_permitted if input.socket.class in allowed_classes

allow if {
	listed
	class_permitted
}

deny contains msg if {
	not listed
	msg := sprintf("raw %v %v to %v port %v is not in socket.allowed", [input.socket.protocol, input.socket.operation, input.socket.address, input.socket.port])
}

# The address as the log reader needs it: the IPv6 spelling and the IPv4 it stands for.
spelled := sprintf("%v (%v of %v)", [input.socket.address, input.socket.embedding, input.socket.embedded_ipv4]) if {
	is_string(input.socket.embedding)
}

else := sprintf("%v", [input.socket.address])

deny contains msg if {
	not class_permitted
	msg := sprintf("raw %v %v to %v port %v: class %v is not global and not in socket.allowed_classes", [input.socket.protocol, input.socket.operation, spelled, input.socket.port, input.socket.class])
}
