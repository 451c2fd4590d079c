-- Who called which tool in the last 24 hours, and how often it was allowed or denied.
-- Usage: sqlite3 -readonly -header -column audit.db < audit/queries/who_called_what_last_day.sql
SELECT principal,
       tool,
       count(*)                                   AS calls,
       sum(verdict = 'allow')                     AS allowed,
       sum(verdict = 'deny')                      AS denied,
       min(time)                                  AS first,
       max(time)                                  AS last
FROM calls
WHERE time >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 day')
GROUP BY principal, tool
ORDER BY calls DESC, principal, tool;
