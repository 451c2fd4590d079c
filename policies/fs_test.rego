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

# --- session labels -------------------------------------------------------------------------

sensitive := object.union(fixtures.fs, {"sensitive_prefixes": ["/data/secrets"]})

labels(doc) := l if {
	l := fs.labels with input as doc with data.fs as sensitive
}

test_an_allowed_read_under_a_sensitive_prefix_labels_the_session if {
	labels(op({"path": "/data/secrets/token"})) == {"read_sensitive"}
	labels(op({"path": "/data/x/../secrets"})) == {"read_sensitive"}
}

test_other_reads_writes_and_refused_reads_attach_no_label if {
	count(labels(op({"path": "/data/secretsauce"}))) == 0
	count(labels(op({"path": "/data/report.csv"}))) == 0
	count(labels(op({"path": "/tmp/work/secrets", "access": "write"}))) == 0

	# Outside fs.allowed_prefixes: denied, so nothing was read.
	refused := object.union(sensitive, {"sensitive_prefixes": ["/etc"]})
	count(fs.labels) == 0 with input as op({"path": "/etc/shadow"}) with data.fs as refused
}

test_shipped_data_marks_nothing_sensitive if {
	count(fs.labels) == 0 with input as op({"path": "/data/secrets/token"})
}
