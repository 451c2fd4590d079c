-- Requests that carried a brokered secret: when, in which call, for whom, to which host, and
-- which header was filled from which template (the log never holds a secret's value).
-- Usage: sqlite3 -readonly -header -column audit.db < audit/queries/brokered_secrets.sql
SELECT e.time,
       e.call_id,
       e.principal,
       e.tool,
       json_extract(e.input, '$.request.host') AS host,
       h.key                                   AS header,
       h.value                                 AS template
FROM entries AS e, json_each(e.obligations, '$.inject.headers') AS h
WHERE e.phase = 'http' AND e.verdict = 'allow'
ORDER BY e.seq, h.key;
