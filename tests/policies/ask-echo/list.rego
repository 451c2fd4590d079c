package gatehouse.list

allow := true
