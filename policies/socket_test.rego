package gatehouse.socket_test

import data.gatehouse.socket

socket_input(changes) := {"phase": "socket", "socket": object.union(
	{"operation": "connect", "protocol": "tcp", "address": "93.184.215.14", "port": 443, "class": "global", "embedded_ipv4": null, "embedding": null},
	changes,
)}

connect := socket_input({})

entry := {"protocol": "tcp", "operation": "connect", "address": "93.184.215.14", "port": 443}

test_no_socket_is_allowed_by_the_shipped_data if {
	not socket.allow with input as connect
	"raw tcp connect to 93.184.215.14 port 443 is not in socket.allowed" in socket.deny with input as connect
}

test_a_listed_address_is_allowed_exactly if {
	socket.allow with input as connect with data.socket.allowed as [entry]
	count(socket.deny) == 0 with input as connect with data.socket.allowed as [entry]
	other_port := socket_input({"port": 80})
	not socket.allow with input as other_port with data.socket.allowed as [entry]
	udp := socket_input({"protocol": "udp"})
	not socket.allow with input as udp with data.socket.allowed as [entry]
}

test_a_listed_address_that_is_not_global_needs_its_class_allowed if {
	private := socket_input({"address": "10.0.0.5", "port": 5432, "class": "private"})
	listed := [{"protocol": "tcp", "operation": "connect", "address": "10.0.0.5", "port": 5432}]
	not socket.allow with input as private with data.socket.allowed as listed
	"raw tcp connect to 10.0.0.5 port 5432: class private is not global and not in socket.allowed_classes" in socket.deny with input as private with data.socket.allowed as listed
	socket.allow with input as private with data.socket as {"allowed": listed, "allowed_classes": ["private"]}
	count(socket.deny) == 0 with input as private with data.socket as {"allowed": listed, "allowed_classes": ["private"]}
}

test_an_embedded_ipv4_is_decided_by_its_class_even_when_listed if {
	nat64 := socket_input({"address": "64:ff9b::7f00:1", "port": 8080, "class": "loopback", "embedded_ipv4": "127.0.0.1", "embedding": "nat64"})
	listed := [{"protocol": "tcp", "operation": "connect", "address": "64:ff9b::7f00:1", "port": 8080}]
	not socket.allow with input as nat64 with data.socket.allowed as listed
	"raw tcp connect to 64:ff9b::7f00:1 (nat64 of 127.0.0.1) port 8080: class loopback is not global and not in socket.allowed_classes" in socket.deny with input as nat64 with data.socket.allowed as listed

	# Allowing a class opens nothing that is not listed.
	not socket.allow with input as nat64 with data.socket.allowed_classes as ["loopback"]
}

test_an_unclassified_address_is_denied if {
	unclassified := {"phase": "socket", "socket": object.remove(connect.socket, ["class"])}
	not socket.allow with input as unclassified with data.socket.allowed as [entry]
}
