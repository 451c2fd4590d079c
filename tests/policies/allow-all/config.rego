package gatehouse.config

# Every read of a component's settings (they are never secret).
allow := true
