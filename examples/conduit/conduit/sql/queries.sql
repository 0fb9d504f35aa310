-- Queries the API runs as plain SQL (loaded by name in conduit/sqlfile.py).

-- name: popular-tags
-- The most used tags, for the tag cloud.
SELECT t.name, count(*) AS uses
FROM tags AS t
JOIN article_tags AS at ON at.tag_id = t.id
GROUP BY t.name
ORDER BY uses DESC, t.name
LIMIT :limit;

-- name: comment-counts
-- How many comments each of a page of articles has.
SELECT article_id, count(*) AS n
FROM comments
WHERE article_id = ANY(:ids)
GROUP BY article_id;
