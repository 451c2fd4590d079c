package gatehouse.fs_test

import data.fixtures
import data.gatehouse.fs

op(changes) := fixtures.patch(fixtures.fs_input, {"fs": changes})

allowed(doc) if {
	fs.allow with input as doc with data.fs as fixtures.fs
	count(fs.deny) == 0 with input as doc with data.fs as fixtures.fs
}

reasons(doc) := r if {
	r := fs.deny with input as doc with data.fs as fixtures.fs
}

test_shipped_data_allows_no_file if {
	not fs.allow with input as fixtures.fs_input
}

test_read_under_an_allowed_prefix_is_allowed if {
	allowed(fixtures.fs_input)
	allowed(op({"path": "/tmp/work/a/../b.txt"}))
}

test_read_outside_the_prefixes_is_denied if {
	doc := op({"path": "/data/../etc/shadow"})
	not allowed(doc)
	"path \"/etc/shadow\" is outside fs.allowed_prefixes" in reasons(doc)
}

test_write_needs_a_writable_prefix if {
	allowed(op({"path": "/tmp/work/out.txt", "access": "write", "operation": "create"}))
	doc := op({"path": "/data/report.csv", "access": "write", "operation": "write"})
	not allowed(doc)
	"path \"/data/report.csv\" is not under a writable prefix (fs.writable)" in reasons(doc)
}

test_relative_path_is_denied if {
	doc := op({"path": "report.csv"})
	not allowed(doc)
	"path report.csv must be absolute with at most 64 segments" in reasons(doc)
}

test_unknown_access_is_denied if {
	doc := op({"access": "execute"})
	not allowed(doc)
	"fs access execute is neither \"read\" nor \"write\"" in reasons(doc)
}

test_link_or_rename_from_outside_the_prefixes_is_denied if {
	every operation in ["link-at", "rename-at", "symlink-at"] {
		doc := op({"path": "/tmp/work/copy", "access": "write", "operation": operation, "target": "/etc/passwd"})
		not allowed(doc)
		sprintf("%v target /etc/passwd is outside fs.allowed_prefixes", [operation]) in reasons(doc)
	}
}

test_rename_needs_a_writable_source if {
	doc := op({"path": "/tmp/work/moved", "access": "write", "operation": "rename-at", "target": "/data/report.csv"})
	not allowed(doc)
	"rename-at source \"/data/report.csv\" is not under a writable prefix (fs.writable)" in reasons(doc)
	allowed(op({"path": "/tmp/work/moved", "access": "write", "operation": "rename-at", "target": "/tmp/work/a"}))
}

test_hard_link_needs_a_writable_source if {
	# A hard link shares the file: writing the new name would write the read-only source.
	doc := op({"path": "/tmp/work/h", "access": "write", "operation": "link-at", "target": "/data/report.csv"})
	not allowed(doc)
	"link-at source \"/data/report.csv\" is not under a writable prefix (fs.writable)" in reasons(doc)
	allowed(op({"path": "/tmp/work/h", "access": "write", "operation": "link-at", "target": "/tmp/work/a"}))
}

test_symlink_to_a_readable_place_is_allowed_in_a_writable_one if {
	allowed(op({"path": "/tmp/work/link", "access": "write", "operation": "symlink-at", "target": "/data/report.csv"}))
}
