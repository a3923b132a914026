"""The offline cache lookups of the clients people use, written from docs/hub-protocol.md 1.11 and 5.2,
so a test can ask "would this client find the file with no network?" without installing it.

huggingface_hub (Python): try_to_load_from_cache, the offline branch of hf_hub_download and the offline
branch of snapshot_download with its trees/<commit>.json completeness check. hf-hub 0.x (Rust, used by
Candle): CacheRepo::get. Each function returns what the client would return, or raises the error it
would raise. None of them strips whitespace from a ref: the clients do not.
"""

import fnmatch
import json
import os
import re

REGEX_COMMIT_HASH = re.compile(r"^[0-9a-f]{40}$")
CACHED_NO_EXIST = object()  # huggingface_hub's _CACHED_NO_EXIST sentinel


class LocalEntryNotFoundError(Exception):
    pass


class IncompleteSnapshotError(Exception):
    pass


def repo_folder_name(repo_id, repo_type="model"):
    """`models--org--name`: the type plural, then the id split on `/`, joined with `--` (1.2)."""
    return "--".join([repo_type + "s", *repo_id.split("/")])


def _read(path):
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


# ---- huggingface_hub ----


def hub_cache_of(environ):
    """constants.HF_HUB_CACHE for this environment: HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else
    HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub; "~" and "$NAME"
    expanded."""
    def expand(path):
        return os.path.expandvars(os.path.expanduser(path))
    home = expand(environ.get("HF_HOME") or os.path.join(
        environ.get("XDG_CACHE_HOME") or os.path.join(environ["HOME"], ".cache"), "huggingface"))
    return expand(environ.get("HF_HUB_CACHE") or environ.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub"))


def try_to_load_from_cache(cache_dir, repo_id, filename, revision=None, repo_type="model"):
    """A path, CACHED_NO_EXIST, or None: refs/<rev> read as is, then .no_exist, then the snapshot."""
    revision = revision or "main"
    repo_cache = os.path.join(cache_dir, repo_folder_name(repo_id, repo_type))
    if not os.path.isdir(repo_cache):
        return None
    ref = os.path.join(repo_cache, "refs", revision)
    if os.path.isfile(ref):
        revision = _read(ref)
    if os.path.isfile(os.path.join(repo_cache, ".no_exist", revision, filename)):
        return CACHED_NO_EXIST
    snapshots = os.path.join(repo_cache, "snapshots")
    if not os.path.isdir(snapshots) or revision not in os.listdir(snapshots):
        return None
    cached = os.path.join(snapshots, revision, filename)
    return cached if os.path.isfile(cached) else None


def _resolve_commit(repo_cache, revision):
    """The commit of an offline lookup: the revision when it is a full lowercase sha, else refs/<rev>."""
    if REGEX_COMMIT_HASH.match(revision):
        return revision
    ref = os.path.join(repo_cache, "refs", revision)
    if not os.path.isfile(ref):
        raise LocalEntryNotFoundError(f"no refs/{revision} in {repo_cache}")
    return _read(ref)


def hf_hub_download_offline(cache_dir, repo_id, filename, revision=None, repo_type="model"):
    """hf_hub_download with HF_HUB_OFFLINE=1: a sha revision whose pointer exists returns at once;
    otherwise the commit comes from refs/<revision> and snapshots/<commit>/<file> must exist."""
    revision = revision or "main"
    repo_cache = os.path.join(cache_dir, repo_folder_name(repo_id, repo_type))
    if REGEX_COMMIT_HASH.match(revision):
        pointer = os.path.join(repo_cache, "snapshots", revision, filename)
        if os.path.exists(pointer):
            return pointer
    commit = _resolve_commit(repo_cache, revision)
    pointer = os.path.join(repo_cache, "snapshots", commit, filename)
    if os.path.exists(pointer):
        return pointer
    raise LocalEntryNotFoundError(f"{filename} of {repo_id}@{revision} is not in the cache")


def _pattern_match(path, pattern):
    """filter_repo_objects: fnmatch where `*` crosses `/`; a trailing `/` means the whole folder."""
    if pattern.endswith("/"):
        pattern += "*"
    return fnmatch.fnmatch(path, pattern)


def filter_repo_objects(paths, allow_patterns=None, ignore_patterns=None):
    for path in paths:
        if allow_patterns is not None and not any(_pattern_match(path, p) for p in allow_patterns):
            continue
        if ignore_patterns is not None and any(_pattern_match(path, p) for p in ignore_patterns):
            continue
        yield path


def load_tree_listing(repo_cache, commit):
    """trees/<commit>.json as huggingface_hub reads it: ignored unless format_version is 1 and every
    xet_hash is 64 hex; returns path -> entry, or None."""
    path = os.path.join(repo_cache, "trees", commit + ".json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format_version") != 1 or not isinstance(doc.get("files"), dict):
        return None
    for entry in doc["files"].values():
        xet = entry.get("xet_hash") if isinstance(entry, dict) else None
        if xet is not None and not re.fullmatch(r"[0-9a-f]{64}", str(xet)):
            return None
    return doc["files"]


def snapshot_download_offline(cache_dir, repo_id, revision=None, repo_type="model", allow_patterns=None,
                              ignore_patterns=None):
    """snapshot_download with HF_HUB_OFFLINE=1: the snapshot folder of the resolved commit; when
    trees/<commit>.json exists, every listed file that the patterns select must be in it."""
    revision = revision or "main"
    repo_cache = os.path.join(cache_dir, repo_folder_name(repo_id, repo_type))
    commit = _resolve_commit(repo_cache, revision)
    folder = os.path.join(repo_cache, "snapshots", commit)
    if not os.path.isdir(folder):
        raise LocalEntryNotFoundError(f"no snapshots/{commit} in {repo_cache}")
    listing = load_tree_listing(repo_cache, commit)
    if listing is not None:
        missing = [p for p in filter_repo_objects(sorted(listing), allow_patterns, ignore_patterns)
                   if not os.path.exists(os.path.join(folder, p))]
        if missing:
            raise IncompleteSnapshotError(f"{repo_id}@{revision}: {len(missing)} listed files missing: {missing[:5]}")
    return folder


# ---- hf-hub 0.x ----


def hf_hub_cache_repo_get(cache_dir, repo_id, filename, revision="main", repo_type="model"):
    """CacheRepo::get: read_to_string(refs/<revision>) (no trim; None when missing), then
    snapshots/<that>/<filename> if exists() (symlink followed). The revision is never recognised as
    a sha, so a pinned lookup needs refs/<sha>."""
    repo_cache = os.path.join(cache_dir, repo_folder_name(repo_id, repo_type))
    try:
        commit = _read(os.path.join(repo_cache, "refs", revision))
    except OSError:
        return None
    candidate = os.path.join(repo_cache, "snapshots", commit, filename)
    return candidate if os.path.exists(candidate) else None
