package gatehouse.fs

# Every file operation inside the mounts (the mounts themselves stay the boundary). Outgoing
# HTTP and raw sockets are not allowed by this bundle: tests of those use the bundled policy
# with their own data.
allow := true
