-- Sessions the policy labelled (input.session.labels, e.g. "read_sensitive"): each session, who
-- ran it, when it was first seen labelled, its labels then, and how many of its later
-- decisions were denies. The decisions of one session: `gatehouse audit query DB --session ID`.
-- Usage: sqlite3 -readonly -header -column audit.db < audit/queries/session_labels.sql
WITH labelled AS (
    SELECT json_extract(input, '$.session.id')     AS session,
           principal,
           seq,
           time,
           verdict,
           json_extract(input, '$.session.labels') AS labels
    FROM entries
    WHERE json_array_length(input, '$.session.labels') > 0
)
SELECT session,
       principal,
       min(time)                                    AS first_labelled,
       (SELECT l.labels FROM labelled AS l
         WHERE l.session = labelled.session ORDER BY l.seq LIMIT 1) AS labels,
       sum(verdict = 'deny')                        AS denied_after
FROM labelled
GROUP BY session, principal
ORDER BY first_labelled;
