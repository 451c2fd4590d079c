-- Outgoing network requests by destination host: how many were allowed and denied, by which tools.
-- Usage: sqlite3 -readonly -header -column audit.db < audit/queries/egress_by_host.sql
SELECT coalesce(host, '(unknown)')       AS host,
       count(*)                          AS requests,
       sum(verdict = 'allow')            AS allowed,
       sum(verdict = 'deny')             AS denied,
       group_concat(DISTINCT tool)       AS tools,
       max(time)                         AS last_seen
FROM egress
GROUP BY 1
ORDER BY requests DESC, host;
