"""`python -m conduit.seed`: a deterministic data set (DATABASE_URL, after the migrations).

500 users (user1@example.com ... user500@example.com, all with the password "password"),
40 tags, 5,000 articles (article-1 ... article-5000) with three tags each, 20,000 comments.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from conduit.security import hash_password
from conduit.settings import get_settings

USERS, TAGS, ARTICLES, COMMENTS = 500, 40, 5_000, 20_000
WORDS = [
    "dragons",
    "training",
    "python",
    "postgres",
    "fastapi",
    "async",
    "sqlalchemy",
    "alembic",
    "testing",
    "performance",
    "caching",
    "indexes",
    "wedding",
    "venues",
    "photography",
    "flowers",
    "catering",
    "music",
    "planning",
    "budgets",
    "guests",
    "travel",
    "cooking",
    "gardening",
    "coffee",
    "running",
    "cycling",
    "books",
    "movies",
    "design",
    "startups",
    "security",
    "privacy",
    "mobile",
    "offline",
    "sync",
    "maps",
    "weather",
    "climate",
    "energy",
]
WORD = "(CAST(:words AS text[]))[1 + g % :tags]"
STATEMENTS = [
    "INSERT INTO users (id, username, email, password_hash, bio) "
    f"SELECT g, 'user' || g, 'user' || g || '@example.com', :password, 'Writes about ' || {WORD} "
    "FROM generate_series(1, :users) g",
    "INSERT INTO tags (id, name) SELECT g, (CAST(:words AS text[]))[g] "
    "FROM generate_series(1, :tags) g",
    "INSERT INTO articles (id, slug, title, description, body, author_id, created_at, updated_at) "
    f"SELECT g, 'article-' || g, 'Article ' || g, 'About ' || {WORD}, "
    "repeat('Lorem ipsum dolor sit amet. ', 40), 1 + g % :users, "
    "timestamptz '2026-01-01' + g * interval '7 minutes', "
    "timestamptz '2026-01-01' + g * interval '7 minutes' "
    "FROM generate_series(1, :articles) g",
    "INSERT INTO article_tags (article_id, tag_id) SELECT DISTINCT a, 1 + (a * k) % :tags "
    "FROM generate_series(1, :articles) a, (VALUES (7), (11), (13)) AS ks(k)",
    "INSERT INTO comments (id, body, article_id, author_id, created_at) "
    "SELECT g, 'Comment ' || g, 1 + g % :articles, 1 + (g * 7) % :users, "
    "timestamptz '2026-02-01' + g * interval '1 minute' FROM generate_series(1, :comments) g",
    "SELECT setval('users_id_seq', :users)",
    "SELECT setval('tags_id_seq', :tags)",
    "SELECT setval('articles_id_seq', :articles)",
    "SELECT setval('comments_id_seq', :comments)",
]


async def seed() -> None:
    values = {
        "password": hash_password("password", salt=b"conduit-seed-salt"),
        "words": WORDS,
        "users": USERS,
        "tags": TAGS,
        "articles": ARTICLES,
        "comments": COMMENTS,
    }
    engine = create_async_engine(get_settings().sqlalchemy_url)
    async with engine.begin() as conn:
        for sql in STATEMENTS:
            await conn.execute(text(sql), {k: v for k, v in values.items() if f":{k}" in sql})
    await engine.dispose()
    print(f"seeded {USERS} users, {TAGS} tags, {ARTICLES} articles, {COMMENTS} comments")


if __name__ == "__main__":
    asyncio.run(seed())
