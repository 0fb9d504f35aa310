"""The RealWorld API: users and login, articles, comments, tags."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from conduit.db import get_session
from conduit.models import Article, Comment, Tag, User
from conduit.security import check_password, hash_password, make_token, read_token
from conduit.sqlfile import query

router = APIRouter(prefix="/api")
Session = Annotated[AsyncSession, Depends(get_session)]


class Registration(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    email: str = Field(min_length=3, max_length=255)
    password: str = Field(min_length=8)


class Credentials(BaseModel):
    email: str
    password: str


class NewArticle(BaseModel):
    title: str = Field(min_length=1, max_length=255)
    description: str = ""
    body: str
    tagList: list[str] = []  # the RealWorld spec's name


class NewComment(BaseModel):
    body: str = Field(min_length=1)


def _user_json(user: User, token: str) -> dict[str, Any]:
    return {
        "user": {
            "email": user.email,
            "username": user.username,
            "bio": user.bio,
            "image": user.image,
            "token": token,
        }
    }


def _token_for(request: Request, user: User) -> str:
    settings = request.app.state.settings
    return make_token(user.id, settings.jwt_secret.get_secret_value(), settings.jwt_ttl_s)


async def current_user(
    request: Request, session: Session, authorization: Annotated[str, Header()] = ""
) -> User:
    scheme, _, token = authorization.partition(" ")
    secret = request.app.state.settings.jwt_secret.get_secret_value()
    user_id = read_token(token, secret) if scheme == "Token" else None
    user = await session.get(User, user_id) if user_id is not None else None
    if user is None:
        raise HTTPException(401, "missing or invalid token")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


@router.post("/users", status_code=201)
async def register(request: Request, session: Session, body: dict[str, Registration]) -> Any:
    new = body["user"]
    user = User(username=new.username, email=new.email, password_hash=hash_password(new.password))
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:
        raise HTTPException(422, "username or email is taken") from None
    return _user_json(user, _token_for(request, user))


@router.post("/users/login")
async def login(request: Request, session: Session, body: dict[str, Credentials]) -> Any:
    given = body["user"]
    user = await session.scalar(select(User).where(User.email == given.email))
    if user is None or not check_password(given.password, user.password_hash):
        raise HTTPException(422, "email or password is invalid")
    return _user_json(user, _token_for(request, user))


@router.get("/user")
async def me(request: Request, user: CurrentUser) -> Any:
    return _user_json(user, _token_for(request, user))


def _slugify(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "article"


def _article_json(article: Article, author: User, tags: list[Tag], comments: int) -> Any:
    return {
        "slug": article.slug,
        "title": article.title,
        "description": article.description,
        "body": article.body,
        "tagList": sorted(t.name for t in tags),
        "createdAt": article.created_at.isoformat(),
        "updatedAt": article.updated_at.isoformat(),
        "commentsCount": comments,
        "author": {"username": author.username, "bio": author.bio, "image": author.image},
    }


@router.get("/articles")
async def list_articles(
    request: Request,
    session: Session,
    tag: str | None = None,
    author: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    stmt = select(Article)
    if tag:
        stmt = stmt.where(Article.tags.any(Tag.name == tag))
    if author:
        stmt = stmt.join(Article.author).where(User.username == author)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    page = stmt.order_by(Article.created_at.desc(), Article.id.desc()).limit(limit).offset(offset)
    if request.app.state.settings.eager_load:
        page = page.options(selectinload(Article.author), selectinload(Article.tags))
    articles = (await session.scalars(page)).all()
    counts = dict(
        (await session.execute(query("comment-counts"), {"ids": [a.id for a in articles]})).all()
    )
    out = []
    for article in articles:
        # Unless loaded eagerly, each article's author and tags are loaded when first used: one
        # query each, per row.
        author_row = await article.awaitable_attrs.author
        tags = await article.awaitable_attrs.tags
        out.append(_article_json(article, author_row, tags, counts.get(article.id, 0)))
    return {"articles": out, "articlesCount": total}


async def _article(session: AsyncSession, slug: str) -> Article:
    article = await session.scalar(
        select(Article)
        .where(Article.slug == slug)
        .options(selectinload(Article.author), selectinload(Article.tags))
    )
    if article is None:
        raise HTTPException(404, f"no article {slug!r}")
    return article


@router.get("/articles/{slug}")
async def get_article(session: Session, slug: str) -> Any:
    article = await _article(session, slug)
    comments = await session.scalar(
        select(func.count()).select_from(Comment).where(Comment.article_id == article.id)
    )
    return {"article": _article_json(article, article.author, article.tags, comments or 0)}


@router.post("/articles", status_code=201)
async def create_article(session: Session, user: CurrentUser, body: dict[str, NewArticle]) -> Any:
    new = body["article"]
    names = sorted(set(new.tagList))
    tags = list((await session.scalars(select(Tag).where(Tag.name.in_(names)))).all())
    tags += [Tag(name=n) for n in names if n not in {t.name for t in tags}]
    article = Article(
        slug=_slugify(new.title),
        title=new.title,
        description=new.description,
        body=new.body,
        author=user,
        tags=tags,
    )
    session.add(article)
    try:
        await session.commit()
    except IntegrityError:
        raise HTTPException(422, f"an article with the slug {article.slug!r} exists") from None
    await session.refresh(article)
    return {"article": _article_json(article, user, tags, 0)}


@router.get("/articles/{slug}/comments")
async def list_comments(session: Session, slug: str) -> Any:
    article = await _article(session, slug)
    comments = await session.scalars(
        select(Comment)
        .where(Comment.article_id == article.id)
        .options(selectinload(Comment.author))
        .order_by(Comment.created_at.desc(), Comment.id.desc())
    )
    return {
        "comments": [
            {"id": c.id, "body": c.body, "author": {"username": c.author.username}}
            for c in comments
        ]
    }


@router.post("/articles/{slug}/comments", status_code=201)
async def add_comment(
    session: Session, user: CurrentUser, slug: str, body: dict[str, NewComment]
) -> Any:
    article = await _article(session, slug)
    comment = Comment(body=body["comment"].body, article_id=article.id, author_id=user.id)
    session.add(comment)
    await session.commit()
    return {"comment": {"id": comment.id, "body": comment.body}}


@router.get("/tags")
async def popular_tags(session: Session) -> Any:
    rows = await session.execute(query("popular-tags"), {"limit": 20})
    return {"tags": [name for name, _ in rows]}
