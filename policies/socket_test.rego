package gatehouse.socket_test

import data.gatehouse.socket

connect := {"phase": "socket", "socket": {"operation": "connect", "protocol": "tcp", "address": "93.184.215.14", "port": 443}}

test_no_socket_is_allowed_by_the_shipped_data if {
	not socket.allow with input as connect
	"raw tcp connect to 93.184.215.14 port 443 is not in socket.allowed" in socket.deny with input as connect
}

test_a_listed_address_is_allowed_exactly if {
	entry := {"protocol": "tcp", "operation": "connect", "address": "93.184.215.14", "port": 443}
	socket.allow with input as connect with data.socket.allowed as [entry]
	count(socket.deny) == 0 with input as connect with data.socket.allowed as [entry]
	other_port := {"phase": "socket", "socket": object.union(connect.socket, {"port": 80})}
	not socket.allow with input as other_port with data.socket.allowed as [entry]
	udp := {"phase": "socket", "socket": object.union(connect.socket, {"protocol": "udp"})}
	not socket.allow with input as udp with data.socket.allowed as [entry]
}
