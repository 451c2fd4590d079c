# Every call allowed, but a person approves each call of echo_echo first.
package gatehouse.call

allow := true

ask contains "echo calls need a person" if input.tool.name == "echo_echo"
