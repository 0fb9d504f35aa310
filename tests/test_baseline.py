"""Baselines kept in git: the stores, the record, and the choice of which run to compare with.

Every repository here is a real one made in tmp_path; remotes are bare repositories reached
over file://, so fetch, push, rejection and shallow clones behave as they do in CI.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from perfgate.baseline import (
    BaselineRecord,
    DirStore,
    GitRefStore,
    find_baseline,
    head_commit,
    open_store,
    record_path,
)
from perfgate.exceptions import BaselineError
from perfgate.verdict.details import EndpointDetails
from perfgate.verdict.model import GateReport, Verdict
from perfgate.verdict.values import Kind, Metric, Status

REF = "refs/heads/perfgate-baselines"


@pytest.fixture(autouse=True)
def _isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's ~/.gitconfig (signing, hooks, default branch) must not change the outcome.
    config = tmp_path / "gitconfig"
    config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE"):
        monkeypatch.delenv(name, raising=False)


def git(cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=stdin,
        env={**os.environ, **(env or {})},
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def identify(path: Path) -> None:
    git(path, "config", "user.name", "Tester")
    git(path, "config", "user.email", "tester@example.com")


def new_repo(path: Path, commits: int = 1) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    identify(path)
    for i in range(commits):
        commit(path, f"c{i + 1}")
    return path


def commit(path: Path, message: str) -> str:
    with (path / "log.txt").open("a") as f:
        f.write(message + "\n")
    git(path, "add", "log.txt")
    git(path, "commit", "-q", "-m", message)
    return git(path, "rev-parse", "HEAD")


def clone(url: str, path: Path, *args: str) -> Path:
    git(path.parent, "clone", "-q", *args, url, str(path))
    identify(path)
    return path


def fake_sha(seed: object) -> str:
    return hashlib.sha1(str(seed).encode()).hexdigest()


def record(
    sha: str, created_at: str = "2024-05-01T12:00:00+00:00", p95: float = 100.0
) -> BaselineRecord:
    result = Verdict(
        name="clients",
        kind=Kind.ENDPOINT,
        status=Status.PASSED,
        metrics={"p95_ms": Metric(p95, "ms", p95 * 0.9, p95 * 1.1, 0.95)},
        description="GET /api/clients",
        details=EndpointDetails(requests=300, concurrency=10, warmup=30),
        samples={"latency_ms": (p95 * 0.5, p95, p95 * 1.2)},
    )
    return BaselineRecord(
        commit=sha,
        commit_date="2024-05-01T11:00:00+00:00",
        created_at=created_at,
        perfgate_version="0.1.0",
        environment={"cpu_count": 2, "python": "3.12.1"},
        results=(result,),
    )


def put_in_ref(repo: Path, path: str, text: str) -> None:
    """Put a file on the baselines ref by hand, the way a broken writer might."""
    blob = git(repo, "hash-object", "-w", "--stdin", stdin=text)
    env = {"GIT_INDEX_FILE": str(repo.parent / "scratch-index")}
    old = git(repo, "rev-parse", REF)
    git(repo, "read-tree", old, env=env)
    git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
    tree = git(repo, "write-tree", env=env)
    git(repo, "update-ref", REF, git(repo, "commit-tree", tree, "-p", old, "-m", "by hand"))


# -- the record ------------------------------------------------------------------------------


def test_record_round_trips_through_json() -> None:
    original = record(fake_sha(1))
    assert BaselineRecord.from_json(json.loads(json.dumps(original.to_json()))) == original
    assert original.result("endpoint", "clients") is original.results[0]
    assert original.result("query", "clients") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": 3}, "unsupported baseline schema 3"),
        ({"commit": None}, "commit: expected a commit sha, got null"),
        ({"dirty": "no"}, "dirty: expected true or false, got str"),
        ({"results": [{"kind": "endpoint"}]}, "results[0]: missing key 'name'"),
    ],
)
def test_record_from_json_says_what_is_wrong(change: dict[str, object], message: str) -> None:
    data = {**record(fake_sha(1)).to_json(), **change}
    with pytest.raises(BaselineError) as info:
        BaselineRecord.from_json(data)
    assert message in str(info.value)


def test_record_from_json_names_a_missing_key() -> None:
    data = record(fake_sha(1)).to_json()
    del data["environment"]
    with pytest.raises(BaselineError, match="missing key 'environment'"):
        BaselineRecord.from_json(data)


# -- the git store ---------------------------------------------------------------------------


def test_git_store_writes_and_reads_back_on_an_orphan_branch(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    head = git(repo, "rev-parse", "HEAD")
    store = GitRefStore(repo, remote=None)
    assert store.read(head) is None
    assert store.commits() == set()

    where = store.write(record(head))

    assert where == f"{REF}:baselines/{head[:2]}/{head}.json"
    assert store.read(head) == record(head)
    assert store.commits() == {head}
    # Readable on GitHub: indented JSON, a README, and no history shared with the code.
    text = git(repo, "show", f"perfgate-baselines:{record_path(head)}")
    assert text.startswith('{\n  "schema": 2,')
    assert "perfgate baselines" in git(repo, "show", "perfgate-baselines:README.md")
    assert git(repo, "rev-list", "--count", "perfgate-baselines") == "1"
    assert store.describe() == f"git ref {REF}"


def test_git_store_leaves_the_work_tree_and_index_alone(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    (repo / "log.txt").write_text("staged change\n")
    git(repo, "add", "log.txt")
    (repo / "other.txt").write_text("untracked\n")
    status, staged = git(repo, "status", "--porcelain"), git(repo, "diff", "--cached")
    head = git(repo, "rev-parse", "HEAD")

    store = GitRefStore(repo, remote=None)
    store.write(record(head))
    store.write(record(fake_sha(2)))
    assert store.read(head) is not None

    assert git(repo, "status", "--porcelain") == status
    assert git(repo, "diff", "--cached") == staged  # the unrelated staged change stays staged
    assert git(repo, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(repo, "rev-parse", "HEAD") == head


def test_rewriting_a_commit_replaces_its_record(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    store = GitRefStore(repo, remote=None)
    sha = fake_sha(1)
    store.write(record(sha, p95=100.0))
    store.write(record(sha, p95=100.0))  # identical: no new commit
    assert git(repo, "rev-list", "--count", REF) == "1"
    store.write(record(sha, "2024-05-02T12:00:00+00:00", p95=120.0))
    stored = store.read(sha)
    assert stored is not None
    assert stored.results[0].metrics["p95_ms"].value == 120.0


def test_corrupt_json_on_the_ref_names_the_commit_and_the_file(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    store = GitRefStore(repo, remote=None)
    good, bad, wrong = fake_sha(1), fake_sha(2), fake_sha(3)
    store.write(record(good))
    put_in_ref(repo, record_path(bad), '{"schema": 1, "commit": ')
    put_in_ref(repo, record_path(wrong), json.dumps(record(good).to_json()))

    with pytest.raises(BaselineError) as info:
        store.read(bad)
    message = str(info.value)
    assert f"{REF}:baselines/{bad[:2]}/{bad}.json" in message
    assert f"baseline of commit {bad[:7]}" in message
    assert "not valid JSON" in message
    with pytest.raises(BaselineError, match=f"the file is for commit '{good}', not {wrong}"):
        store.read(wrong)
    assert store.read(good) == record(good)


def test_git_store_rejects_a_short_sha(tmp_path: Path) -> None:
    store = GitRefStore(new_repo(tmp_path / "repo"), remote=None)
    with pytest.raises(BaselineError, match="full commit sha"):
        store.read("abc1234")


def test_concurrent_local_writers_lose_nothing(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        store = GitRefStore(repo, remote=None)
        barrier.wait()
        try:
            for i in range(4):
                store.write(record(fake_sha((seed, i))))
        except BaseException as e:  # surfaced below: a thread's exception is otherwise lost
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    expected = {fake_sha((n, i)) for n in range(2) for i in range(4)}
    assert GitRefStore(repo, remote=None).commits() == expected


def test_git_store_commits_without_a_configured_identity(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.useConfigOnly", "true")  # like a bare CI runner
    store = GitRefStore(repo, remote=None)
    store.write(record(fake_sha(1)))
    assert git(repo, "log", "-1", "--format=%an <%ae>", REF) == "perfgate <perfgate@localhost>"


def test_configurable_ref(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    store = open_store("git:refs/perfgate/baselines", repo)
    assert store.describe() == "git ref refs/perfgate/baselines"
    store.write(record(fake_sha(1)))
    assert git(repo, "ls-tree", "-r", "--name-only", "refs/perfgate/baselines").count(".json") == 1
    with pytest.raises(BaselineError, match="not a valid git ref name"):
        GitRefStore(repo, "bad ref")


# -- the directory store and the store spec -------------------------------------------------


def test_dir_store_writes_atomically_and_reads_back(tmp_path: Path) -> None:
    store = open_store("dir:.perfgate/baselines", tmp_path)
    assert isinstance(store, DirStore)
    assert store.describe() == f"directory {tmp_path / '.perfgate/baselines'}"
    sha = fake_sha(1)
    assert store.read(sha) is None
    assert store.commits() == set()
    where = store.write(record(sha))
    assert where == str(tmp_path / ".perfgate/baselines" / f"{sha}.json")
    assert store.read(sha) == record(sha)
    assert store.commits() == {sha}
    assert [p.name for p in (tmp_path / ".perfgate/baselines").iterdir()] == [f"{sha}.json"]

    (tmp_path / ".perfgate/baselines" / f"{sha}.json").write_text("[1, 2")
    with pytest.raises(BaselineError, match=rf"{sha}\.json \(baseline of commit {sha[:7]}\)"):
        store.read(sha)


@pytest.mark.parametrize("spec", ["s3:bucket", "dir:", "git:", "notes"])
def test_unknown_store_spec_says_what_is_accepted(tmp_path: Path, spec: str) -> None:
    with pytest.raises(BaselineError, match=r"'git:|'dir:"):
        open_store(spec, tmp_path)


# -- head_commit -----------------------------------------------------------------------------


def test_head_commit_flags_uncommitted_changes(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    sha, date, dirty = head_commit(repo)
    assert (sha, dirty) == (git(repo, "rev-parse", "HEAD"), False)
    assert date == git(repo, "show", "-s", "--format=%cI", "HEAD")
    (repo / "untracked.txt").write_text("x")
    assert head_commit(repo)[2] is False  # CI leaves untracked caches about: not "dirty"
    (repo / "log.txt").write_text("edited\n")
    assert head_commit(repo / ".")[2] is True


def test_head_commit_outside_a_repository(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="not inside a git repository"):
        head_commit(tmp_path)


# -- choosing the baseline -------------------------------------------------------------------


def feature_repo(tmp_path: Path) -> tuple[Path, list[str]]:
    """main c1..c4, then branch `feature` with two commits checked out."""
    repo = new_repo(tmp_path / "repo", commits=0)
    main = [commit(repo, f"c{i}") for i in range(1, 5)]
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, "f1")
    commit(repo, "f2")
    return repo, main


def test_automatic_choice_walks_back_from_the_merge_base(tmp_path: Path) -> None:
    repo, main = feature_repo(tmp_path)
    store = GitRefStore(repo, remote=None)
    store.write(record(main[1]))  # c2: two commits behind the merge-base c4

    found, info = find_baseline(repo, store, None, {})

    assert found is not None
    assert found.commit == main[1]
    assert info.found
    assert info.commit == main[1]
    assert info.how == f"merge-base of HEAD and main ({main[3][:7]}), 2 commits back"
    assert info.date == found.commit_date
    assert info.source == f"git ref {REF}"


def test_nothing_found_lists_the_commits_searched(tmp_path: Path) -> None:
    repo, main = feature_repo(tmp_path)
    store = DirStore(tmp_path / "empty")

    found, info = find_baseline(repo, store, "auto", {}, max_distance=2)

    assert found is None
    assert not info.found
    assert info.commit is None
    assert info.searched == (main[3][:7], main[2][:7], main[1][:7])
    assert info.how == f"merge-base of HEAD and main ({main[3][:7]})"
    assert info.source == f"directory {tmp_path / 'empty'}"


def test_on_the_base_branch_a_clean_head_is_not_its_own_baseline(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo", commits=3)
    head, parent = git(repo, "rev-parse", "HEAD"), git(repo, "rev-parse", "HEAD~1")
    store = DirStore(tmp_path / "baselines")
    store.write(record(head))
    store.write(record(parent))

    found, info = find_baseline(repo, store, None, {})
    assert found is not None
    assert found.commit == parent
    assert "is on main" in info.how
    assert info.how.endswith("1 commit back")

    (repo / "log.txt").write_text("work in progress\n")  # now HEAD's record measured other code
    found, info = find_baseline(repo, store, None, {})
    assert found is not None
    assert found.commit == head
    assert "uncommitted changes" in info.how


def test_explicit_ref_or_sha(tmp_path: Path) -> None:
    repo, main = feature_repo(tmp_path)
    git(repo, "tag", "v1.2", main[2])
    store = DirStore(tmp_path / "baselines")
    store.write(record(main[1]))
    store.write(record(main[3]))

    found, info = find_baseline(repo, store, "v1.2", {})
    assert found is not None
    assert found.commit == main[1]
    assert info.how == "--perfgate-compare=v1.2, 1 commit back"

    found, info = find_baseline(repo, store, main[3], {})
    assert found is not None
    assert found.commit == main[3]
    assert info.how == f"--perfgate-compare={main[3]}"

    with pytest.raises(BaselineError, match=r"--perfgate-compare=v9: no such commit"):
        find_baseline(repo, store, "v9", {})


def test_file_baseline_accepts_a_record_or_a_results_file(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    store = DirStore(tmp_path / "unused")
    rec = record(fake_sha(7))
    (repo / "baseline.json").write_text(json.dumps(rec.to_json()))
    report = GateReport(rec.results, {"cpu_count": 2}, "2024-05-03T00:00:00+00:00", "0.1.0")
    (tmp_path / "results.json").write_text(json.dumps(report.to_json()))

    found, info = find_baseline(repo, store, "baseline.json", {})  # relative to the repository
    assert found == rec
    assert (info.how, info.commit, info.source) == ("file baseline.json", None, "baseline.json")

    found, info = find_baseline(repo, store, str(tmp_path / "results.json"), {})
    assert found is not None
    assert found.results == rec.results
    assert found.created_at == info.date == "2024-05-03T00:00:00+00:00"

    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(BaselineError, match="neither a perfgate baseline record nor"):
        find_baseline(repo, store, str(tmp_path / "other.json"), {})
    with pytest.raises(BaselineError, match="no such file"):
        find_baseline(repo, store, "missing.json", {})


# -- remotes: pull requests, publishing, shallow clones --------------------------------------


def published(tmp_path: Path) -> tuple[str, list[str]]:
    """A bare remote: main m1..m6, develop = main~2 + d1, feature = develop + f1..f3."""
    src = new_repo(tmp_path / "src", commits=0)
    main = [commit(src, f"m{i}") for i in range(1, 7)]
    git(src, "checkout", "-q", "-b", "develop", main[3])
    develop = commit(src, "d1")
    git(src, "checkout", "-q", "-b", "feature")
    for i in range(1, 4):
        commit(src, f"f{i}")
    git(src, "checkout", "-q", "main")
    git(tmp_path, "clone", "-q", "--bare", str(src), str(tmp_path / "remote.git"))
    return f"file://{tmp_path / 'remote.git'}", [*main, develop]


def test_github_base_ref_picks_the_pull_requests_base(tmp_path: Path) -> None:
    url, shas = published(tmp_path)
    work = clone(url, tmp_path / "work")
    git(work, "checkout", "-q", "feature")
    store = DirStore(tmp_path / "baselines")
    store.write(record(shas[6]))  # develop's d1
    store.write(record(shas[5]))  # main's tip: not where the feature forked
    store.write(record(shas[2]))  # m3: one behind the fork point m4

    found, info = find_baseline(work, store, None, {"GITHUB_BASE_REF": "develop"})
    assert found is not None
    assert found.commit == shas[6]
    assert info.how == f"merge-base of HEAD and origin/develop ({shas[6][:7]})"

    found, info = find_baseline(work, store, None, {})  # origin/HEAD is main
    assert found is not None
    assert found.commit == shas[2]
    assert info.how == f"merge-base of HEAD and origin/HEAD ({shas[3][:7]}), 1 commit back"


def test_two_clones_push_concurrently_and_both_results_survive(tmp_path: Path) -> None:
    url, _ = published(tmp_path)
    a, b = clone(url, tmp_path / "a"), clone(url, tmp_path / "b")
    shared = fake_sha("same commit")
    GitRefStore(a).write(record(shared, "2024-05-01T10:00:00+00:00", p95=1.0))
    GitRefStore(b).write(record(shared, "2024-05-01T11:00:00+00:00", p95=2.0))  # newer
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def job(path: Path, name: str) -> None:
        store = GitRefStore(path)
        barrier.wait()
        try:
            for i in range(2):
                store.write(record(fake_sha((name, i))))
                store.push()
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=job, args=(p, p.name)) for p in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # Both clones started the ref on their own, so at least one push was rejected and merged.
    assert int(git(tmp_path / "remote.git", "rev-list", "--merges", "--count", REF)) >= 1

    fresh = GitRefStore(clone(url, tmp_path / "fresh"))  # fetches the ref it does not have
    expected = {fake_sha((n, i)) for n in "ab" for i in range(2)} | {shared}
    assert fresh.commits() == expected
    kept = fresh.read(shared)
    assert kept is not None
    assert kept.results[0].metrics["p95_ms"].value == 2.0  # the newer created_at won


def test_push_without_a_remote_says_so(tmp_path: Path) -> None:
    store = GitRefStore(new_repo(tmp_path / "repo"))
    store.write(record(fake_sha(1)))  # no remote: writing still works, locally
    with pytest.raises(BaselineError, match="has no git remote 'origin'"):
        store.push()


def test_shallow_clone_is_deepened_to_find_the_baseline(tmp_path: Path) -> None:
    url, shas = published(tmp_path)
    seed = clone(url, tmp_path / "seed")
    store = GitRefStore(seed)
    store.write(record(shas[1]))  # m2: two commits behind develop's fork point m4
    store.push()
    ci = clone(url, tmp_path / "ci", "--depth", "1", "--branch", "feature")
    assert git(ci, "rev-parse", "--is-shallow-repository") == "true"

    found, info = find_baseline(ci, GitRefStore(ci), None, {"GITHUB_BASE_REF": "main"})

    assert found is not None
    assert found.commit == shas[1]
    assert info.how == f"merge-base of HEAD and origin/main ({shas[3][:7]}), 2 commits back"


def test_shallow_clone_that_cannot_deepen_names_the_fetch_depth(tmp_path: Path) -> None:
    url, _ = published(tmp_path)
    ci = clone(url, tmp_path / "ci", "--depth", "1", "--branch", "feature", "--no-single-branch")
    git(ci, "remote", "set-url", "origin", f"file://{tmp_path / 'gone.git'}")

    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"commits": 3}}))
    env = {"GITHUB_BASE_REF": "main", "GITHUB_EVENT_PATH": str(event)}

    with pytest.raises(BaselineError) as info:
        find_baseline(ci, DirStore(tmp_path / "b"), None, env, max_distance=50)

    message = str(info.value)
    assert "this is a shallow clone (1 commit of history)" in message
    assert "does not appear to be a git repository" in message  # why deepening failed
    # 3 commits in the pull request, its merge commit, the merge-base, and 50 to walk back.
    assert "set actions/checkout with fetch-depth: 0 (or at least 55)" in message


def test_an_unreachable_remote_fails_reads_plainly_but_not_writes(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    git(repo, "remote", "add", "origin", f"file://{tmp_path / 'gone.git'}")
    assert isinstance(open_store("git", repo), GitRefStore)

    GitRefStore(repo).write(record(fake_sha(1)))  # recorded locally; a later push publishes it

    git(repo, "update-ref", "-d", REF)
    with pytest.raises(BaselineError, match=f"could not fetch {REF} from origin: fatal: "):
        GitRefStore(repo).commits()
