package gatehouse.socket_test

import data.gatehouse.socket

test_no_socket_is_allowed if {
	doc := {"phase": "socket", "socket": {"operation": "connect", "protocol": "tcp", "address": "93.184.215.14", "port": 443}}
	not socket.allow with input as doc
	"raw sockets are not allowed by this bundle" in socket.deny with input as doc
}
