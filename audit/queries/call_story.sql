-- The whole story of one call: its verdict, every http/fs/socket decision made while it ran, and
-- its outcome, with milliseconds since the call's first entry.
-- Usage: sqlite3 -readonly -header -column -cmd ".parameter set :call_id 'THE-CALL-ID'" audit.db < audit/queries/call_story.sql
SELECT seq,
       printf('+%d ms', CAST(round((julianday(time) - julianday(first.t)) * 86400000) AS INTEGER)) AS offset,
       phase,
       verdict,
       tool,
       principal,
       reasons,
       CASE phase
         WHEN 'outcome' THEN metrics
         ELSE json_extract(input, '$')
       END AS detail
FROM entries, (SELECT min(time) AS t FROM entries WHERE call_id = :call_id) AS first
WHERE call_id = :call_id
ORDER BY seq;
