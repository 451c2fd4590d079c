-- Every denial reason with how often it fired, per phase, with the most recent occurrence.
-- Usage: sqlite3 -readonly -header -column audit.db < audit/queries/denials_by_reason.sql
SELECT r.value        AS reason,
       d.phase        AS phase,
       count(*)       AS times,
       count(DISTINCT d.principal) AS callers,
       max(d.time)    AS last_seen
FROM denials AS d, json_each(d.reasons) AS r
GROUP BY r.value, d.phase
ORDER BY times DESC, reason;
