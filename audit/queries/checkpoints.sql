-- The signed checkpoints stored in the log (see audit/VERIFY.md); `gatehouse audit verify` checks them.
-- Usage: sqlite3 -readonly -header -column audit.db < audit/queries/checkpoints.sql
SELECT id, tree_size, hex(root_hash) AS root, time, CASE signed WHEN 1 THEN 'signed' ELSE 'UNSIGNED' END AS signature
FROM checkpoints
ORDER BY id;
